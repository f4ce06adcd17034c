"""`python -m ledger_client.cli` runs ledgerctl."""

import sys

from ledger_client.cli.app import main

sys.exit(main())
