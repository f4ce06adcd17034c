#!/usr/bin/env bash
# Second README command: install what the tests need, then lint, type-check and run the whole suite.
# Tests use LEDGER_TEST_DATABASE_URL, else PostgreSQL on 127.0.0.1:5432, else an embedded one they
# start themselves; they fail (never skip) when none can be had.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh" test
cd "$ROOT"
# Fault tests start private redis-server processes (never the machine's own).
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server" >&2
    as_root apt-get update -qq && as_root apt-get install -y -qq redis-server >/dev/null
fi
echo "== ruff"; "$VENV/bin/ruff" check .
echo "== mypy"; "$VENV/bin/mypy"
echo "== pytest"; exec "$VENV/bin/pytest" "$@"
