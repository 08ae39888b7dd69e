#!/usr/bin/env bash
# Installs what the farm and its tests need on a fresh Debian machine:
# npm dependencies (never downloading onnxruntime's CUDA libraries),
# Debian's nats-server, and for the tests Debian's postgresql (store
# engines) and chromium (the dashboard's browser tests); both skipped with
# NIGHTSHIFT_SKIP_BROWSER=1, and without them those tests are skipped.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> installing npm dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing nats-server (Debian package)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >&2
  else
    echo "nats-server is missing. Install it with: sudo apt-get install nats-server (or set NATS_SERVER_BIN)" >&2
    exit 1
  fi
fi

# iproute2 (`ip`) for test/netns, which builds hosts from network namespaces (skipped without it).
if ! command -v ip >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing iproute2 (for the network-namespace test)" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >&2
fi

# Debian's PostgreSQL for the store-engine tests (each starts a throwaway cluster; skipped without it).
if [ "${NIGHTSHIFT_SKIP_BROWSER:-}" != "1" ] && [ -z "${NIGHTSHIFT_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing postgresql (Debian package, for the PostgreSQL store tests)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || echo "note: postgresql could not be installed; the PostgreSQL store tests will be skipped" >&2
  else
    echo "note: postgresql is missing, so the PostgreSQL store tests will be skipped (sudo apt-get install postgresql)" >&2
  fi
fi

# Headless Chromium for test/browser (driven by playwright-core; never `npx playwright install`).
if [ "${NIGHTSHIFT_SKIP_BROWSER:-}" != "1" ] && [ ! -x "${NIGHTSHIFT_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium (Debian package, for the dashboard's browser tests)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "note: chromium is missing, so the dashboard's browser tests will be skipped (sudo apt-get install chromium)" >&2
  fi
fi

# A compose CLI renders deploy/docker-compose.yml in test/deploy; no Docker engine is needed for that.
if [ "${NIGHTSHIFT_SKIP_BROWSER:-}" != "1" ] && ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing docker-compose (Debian package, to validate deploy/docker-compose.yml)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >&2 || echo "note: docker-compose could not be installed; the compose rendering check will be skipped" >&2
  fi
fi
