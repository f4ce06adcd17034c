"""Python SDK of the ledger (see docs/sdk.md)."""
