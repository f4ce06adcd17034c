"""Who may call the ledger: authentication, scopes, tenants, rate limits, and the caller audit."""
