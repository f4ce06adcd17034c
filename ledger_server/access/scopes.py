"""Which scope each RPC needs. Deny by default: an RPC not listed here needs `admin`."""

from __future__ import annotations

ADMIN = "admin"
SCOPES = frozenset({
    "accounts:read", "accounts:write", "transfers:write", "transfers:reverse", "events:read",
    "webhooks:write", "chain:write", "chain:read", ADMIN,
})

# Methods anyone may call without credentials: load balancers' health checks and schema reflection.
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                   "/grpc.reflection.v1.ServerReflection/")

_LEDGER = "/ledger.v1.Ledger/"
_EVENTS = "/ledger.v1.LedgerEvents/"
METHOD_SCOPES: dict[str, str] = {
    _LEDGER + "CreateAsset": ADMIN,
    _LEDGER + "GetAsset": "accounts:read",
    _LEDGER + "ListAssets": "accounts:read",
    _LEDGER + "CreateAccount": "accounts:write",
    _LEDGER + "GetAccount": "accounts:read",
    _LEDGER + "ListAccounts": "accounts:read",
    _LEDGER + "GetAccountBalance": "accounts:read",
    _LEDGER + "ListAccountEntries": "accounts:read",
    _LEDGER + "CreateTransfer": "transfers:write",
    _LEDGER + "CreateTransfers": "transfers:write",
    _LEDGER + "PostPendingTransfer": "transfers:write",
    _LEDGER + "VoidPendingTransfer": "transfers:write",
    _LEDGER + "ReverseTransfer": "transfers:reverse",
    _LEDGER + "GetTransfer": "accounts:read",
    _LEDGER + "AdjustPendingTransfer": "transfers:write",
    _LEDGER + "ApplyOperations": "transfers:write",
    _LEDGER + "CreateApiKey": ADMIN,
    _LEDGER + "CreateCertificateCaller": ADMIN,
    _LEDGER + "RevokeCaller": ADMIN,
    _LEDGER + "ListCallers": ADMIN,
    _LEDGER + "ListAuditRecords": ADMIN,
    _LEDGER + "VerifyLedger": ADMIN,
    _LEDGER + "RegisterChainAsset": ADMIN,
    _LEDGER + "ListChainAssets": "chain:read",
    _LEDGER + "RegisterDepositAddress": "chain:write",
    _LEDGER + "ListDepositAddresses": "chain:read",
    _LEDGER + "ListChainDeposits": "chain:read",
    _LEDGER + "ListChainAlerts": "chain:read",
    _LEDGER + "CreateWithdrawal": "chain:write",
    _LEDGER + "GetWithdrawal": "chain:read",
    # Events and webhooks (service LedgerEvents, docs/events.md).
    _EVENTS + "WatchEvents": "events:read",
    _EVENTS + "CreateWebhookEndpoint": "webhooks:write",
    _EVENTS + "ListWebhookEndpoints": "webhooks:write",
    _EVENTS + "UpdateWebhookEndpoint": "webhooks:write",
    _EVENTS + "DisableWebhookEndpoint": "webhooks:write",
    _EVENTS + "RotateWebhookSecret": "webhooks:write",
    _EVENTS + "ListDeadLetters": "webhooks:write",
    _EVENTS + "ReplayDeliveries": "webhooks:write",
    _EVENTS + "ListDeliveryAttempts": "webhooks:write",
}


def required_scope(method: str) -> str | None:
    """The scope `method` needs, or None for a public method."""
    if method.startswith(PUBLIC_PREFIXES):
        return None
    return METHOD_SCOPES.get(method, ADMIN)


def allows(granted: frozenset[str], needed: str) -> bool:
    return needed in granted or ADMIN in granted
