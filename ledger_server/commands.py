"""Validated, canonical forms of every mutating request: what the posting engine applies.

Each command knows its request id and a hash of its canonical content: the idempotency layer
compares that hash to the stored one to tell a retry (same payload) from a reused key.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any


def canonical_hash(operation: str, fields: dict[str, Any]) -> bytes:
    """SHA-256 of a canonical JSON rendering: key order and map order never change the hash."""
    text = json.dumps([operation, fields], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True)
class CreateAsset:
    request_id: str
    code: str
    scale: int
    operation = "CreateAsset"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"code": self.code, "scale": self.scale})


@dataclass(frozen=True)
class CreateAccount:
    request_id: str
    asset: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    metadata: dict[str, str] = field(default_factory=dict)
    operation = "CreateAccount"

    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {
                "asset": self.asset,
                "dmnec": self.debits_must_not_exceed_credits,
                "cmned": self.credits_must_not_exceed_debits,
                "metadata": self.metadata,
            },
        )


@dataclass(frozen=True)
class CreateTransfer:
    request_id: str
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    asset: str
    pending: bool
    timeout_seconds: int
    metadata: dict[str, str] = field(default_factory=dict)
    operation = "CreateTransfer"

    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {
                "debit": str(self.debit_account_id),
                "credit": str(self.credit_account_id),
                "amount": str(self.amount),
                "asset": self.asset,
                "pending": self.pending,
                "timeout": self.timeout_seconds,
                "metadata": self.metadata,
            },
        )


@dataclass(frozen=True)
class PostPending:
    request_id: str
    pending_id: uuid.UUID
    amount: int | None  # None: the whole hold
    metadata: dict[str, str] = field(default_factory=dict)
    operation = "PostPendingTransfer"

    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {
                "pending_id": str(self.pending_id),
                "amount": None if self.amount is None else str(self.amount),
                "metadata": self.metadata,
            },
        )


@dataclass(frozen=True)
class VoidPending:
    request_id: str
    pending_id: uuid.UUID
    metadata: dict[str, str] = field(default_factory=dict)
    operation = "VoidPendingTransfer"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"pending_id": str(self.pending_id), "metadata": self.metadata})


@dataclass(frozen=True)
class ReverseTransfer:
    request_id: str
    transfer_id: uuid.UUID
    amount: int | None  # None: all that is left to reverse
    metadata: dict[str, str] = field(default_factory=dict)
    operation = "ReverseTransfer"

    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {
                "transfer_id": str(self.transfer_id),
                "amount": None if self.amount is None else str(self.amount),
                "metadata": self.metadata,
            },
        )


@dataclass(frozen=True)
class ExpireHold:
    """Internal: the server releases a hold whose timeout passed. Not stored as a request outcome;
    the hold's one-way state transition makes it happen at most once."""

    pending_id: uuid.UUID
    operation = "ExpireHold"

    @property
    def request_id(self) -> str:
        return f"expire:{self.pending_id}"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"pending_id": str(self.pending_id)})


TransferCommand = CreateTransfer | PostPending | VoidPending | ReverseTransfer
Command = CreateAsset | CreateAccount | CreateTransfer | PostPending | VoidPending | ReverseTransfer | ExpireHold


@dataclass(frozen=True)
class TransferBatch:
    """CreateTransfers: items each with their own request id, plus the batch's own id."""

    request_id: str
    items: tuple[CreateTransfer, ...]
    atomic: bool
    operation = "CreateTransfers"

    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {"atomic": self.atomic, "items": [[i.request_id, i.request_hash().hex()] for i in self.items]},
        )


Job = Command | TransferBatch
