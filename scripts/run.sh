#!/usr/bin/env bash
# First README command: set up .venv, install the project, start the ledger.
# With no LEDGER_DATABASE_URL the ledger runs on an embedded PostgreSQL under .state/.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
cd "$ROOT"
exec "$VENV/bin/ledger-server" "$@"
