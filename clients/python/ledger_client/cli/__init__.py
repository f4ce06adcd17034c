"""`ledgerctl`: the operators' command line (see app.py and docs/sdk.md)."""

from __future__ import annotations

from ledger_client.cli.app import main

__all__ = ["main"]
