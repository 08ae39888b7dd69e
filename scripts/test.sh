#!/usr/bin/env bash
# Command two: the whole test suite. Installs what it needs (scripts/bootstrap.sh),
# type-checks, then runs every *.test.ts with node's test runner. Tests start
# their own servers (nats-server, s3rver, services) on loopback and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "==> type-check" >&2
npx tsc -p tsconfig.json
npx tsc -p services/coordinator/src/dashboard/static/tsconfig.json # the dashboard's browser modules (JSDoc-typed JS)
echo "==> lint" >&2
npx eslint .
mapfile -t files < <(find packages services test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
echo "==> ${#files[@]} test files" >&2
# One file at a time: the machine has 2 cores and the end-to-end files each run a farm.
exec node --import tsx --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
