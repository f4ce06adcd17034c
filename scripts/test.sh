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
# The chain tests start a real local Ethereum node: anvil from npm (a pinned version that ships the
# linux/macOS binaries), installed once under chain/testnode (git-ignored node_modules).
ANVIL_VERSION="1.7.1"
if ! grep -qs "\"version\": \"$ANVIL_VERSION\"" chain/testnode/node_modules/@foundry-rs/anvil/package.json; then
    echo "== installing anvil $ANVIL_VERSION"
    npm install --prefix chain/testnode --no-audit --no-fund --save-exact "@foundry-rs/anvil@$ANVIL_VERSION"
fi
echo "== pytest"; exec "$VENV/bin/pytest" "$@"
