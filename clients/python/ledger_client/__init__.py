"""Python client SDK for the ledger: safe retries by construction.

    from ledger_client import LedgerClient
    with LedgerClient("127.0.0.1:50051") as ledger:
        ledger.create_transfer(debit_account_id=a, credit_account_id=b, amount="12.50", asset="USD")

See docs/sdk.md. The generated stubs (`ledger.v1`) stay available for anything the SDK does not wrap.
"""

from __future__ import annotations

from ledger_client import errors
from ledger_client.aio import AsyncLedgerClient
from ledger_client.channel import DEFAULT_TARGET, ChannelSettings, TlsSettings
from ledger_client.client import LedgerClient
from ledger_client.errors import *  # noqa: F403 - every error class is public API
from ledger_client.money import Amount, format_major, to_major_units, to_minor_units
from ledger_client.request_ids import new_request_id
from ledger_client.results import (
    Account,
    AdjustPending,
    Asset,
    AuditRecord,
    Balance,
    BatchResult,
    Caller,
    Entry,
    InvariantViolation,
    ItemResult,
    NewApiKey,
    NewTransfer,
    Operation,
    Page,
    PostPending,
    Reverse,
    Side,
    Transfer,
    TransferKind,
    TransferState,
    Verification,
    VoidPending,
)
from ledger_client.retry import RetryNotice, RetryPolicy

__all__ = [
    "DEFAULT_TARGET",
    "Account",
    "AdjustPending",
    "Amount",
    "Asset",
    "AsyncLedgerClient",
    "AuditRecord",
    "Balance",
    "BatchResult",
    "Caller",
    "ChannelSettings",
    "Entry",
    "InvariantViolation",
    "ItemResult",
    "LedgerClient",
    "NewApiKey",
    "NewTransfer",
    "Operation",
    "Page",
    "PostPending",
    "RetryNotice",
    "RetryPolicy",
    "Reverse",
    "Side",
    "TlsSettings",
    "Transfer",
    "TransferKind",
    "TransferState",
    "Verification",
    "VoidPending",
    "format_major",
    "new_request_id",
    "to_major_units",
    "to_minor_units",
]
__all__ += errors.__all__
