"""ledger_chain: the chain watcher (deposits) and the withdrawal signer, talking to an EVM node over
JSON-RPC and to the ledger over gRPC. See docs/chain.md."""
