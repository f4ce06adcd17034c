"""The ledger gRPC server: posting engine on PostgreSQL, idempotent by request id."""
