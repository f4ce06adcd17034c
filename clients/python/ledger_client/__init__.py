"""The Python SDK of the ledger."""
