#!/usr/bin/env bash
# Runs the whole suite once, with every database test on each backend that is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

backends="${FJERNHJELP_TEST_BACKENDS:-}"
if [ -z "$backends" ]; then
  pg_url="${FJERNHJELP_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
  if $BIN/python - "$pg_url" <<'PY' 2>/dev/null; then
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
    backends="sqlite,postgresql"
  else
    echo "################################################################"
    echo "# WARNING: PostgreSQL is not reachable at $pg_url"
    echo "# Running the suite on SQLite ONLY. .ci/run starts PostgreSQL;"
    echo "# locally, start it or set FJERNHJELP_TEST_PG_URL."
    echo "################################################################"
    backends="sqlite"
  fi
fi
export FJERNHJELP_TEST_BACKENDS="$backends"
echo "test backends: $backends"

$BIN/ruff check src tests bench
$BIN/python -m pytest -n 2 --dist loadgroup "$@"
