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

# The one-file Support client `make test` built (Makefile: SUPPORT_CLIENT_STAMP): the tests
# of the built client and the Chromium story test run it; without it they fail, saying so.
if [ -z "${FJERNHJELP_SUPPORT_CLIENT:-}" ]; then
  FJERNHJELP_SUPPORT_CLIENT="$PWD/dist/$($BIN/python -c 'from fjernhjelp.support.build import target_name; print(target_name())')"
  export FJERNHJELP_SUPPORT_CLIENT
fi
echo "support client: $FJERNHJELP_SUPPORT_CLIENT"

$BIN/ruff check src tests bench
# Bytecode compiled once and kept: every server, agent and command-line process the tests
# start imports this package (a third of a second of CPU each to compile it again), and
# pytest rewrites the test modules in each worker. Where PYTHONDONTWRITEBYTECODE is set
# (this machine's environment sets it) none of that was kept.
unset PYTHONDONTWRITEBYTECODE
$BIN/python -m compileall -q -j 0 src >/dev/null
# The slowest tests are named at the end, so that the 20-minute bar can be watched.
$BIN/python -m pytest -n 2 --dist loadgroup --durations=25 "$@"
