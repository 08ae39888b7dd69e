#!/usr/bin/env bash
# Command one: bring the whole farm up locally and run the example sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
NIGHTSHIFT_SKIP_BROWSER=1 bash scripts/bootstrap.sh
exec node --import tsx scripts/up.ts "$@"
