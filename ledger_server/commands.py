"""Validated, canonical forms of every mutating request: what the posting engine applies.

Each command knows its request id and a hash of its canonical content: the idempotency layer
compares that hash to the stored one to tell a retry (same payload) from a reused key.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ledger_server.ids import uuid_text


def canonical_hash(operation: str, fields: dict[str, Any]) -> bytes:
    """SHA-256 of a canonical JSON rendering: key order and map order never change the hash."""
    text = json.dumps([operation, fields], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).digest()


def computed_once(compute: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """A command's request hash, computed on first use and kept on the (immutable) command: the
    handler computes it before queueing, and the writer (replays, reused keys, a batch and each of
    its items) only reads it."""

    @functools.wraps(compute)
    def request_hash(self: Any) -> bytes:
        memo = self.__dict__  # frozen dataclasses still have one; fields never change
        cached: bytes | None = memo.get("_request_hash")
        if cached is None:
            cached = memo["_request_hash"] = compute(self)
        return cached

    return request_hash


@dataclass(frozen=True)
class CreateAsset:
    request_id: str
    code: str
    scale: int
    caller: str = "system"  # who asked: recorded with the outcome (audit), not part of the hash
    operation = "CreateAsset"

    @computed_once
    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"code": self.code, "scale": self.scale})


@dataclass(frozen=True)
class CreateAccount:
    request_id: str
    asset: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    metadata: dict[str, str] = field(default_factory=dict)
    caller: str = "system"  # who asked: recorded with the outcome (audit), not part of the hash
    operation = "CreateAccount"

    @computed_once
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
    caller: str = "system"  # who asked: recorded with the outcome (audit), not part of the hash
    operation = "CreateTransfer"

    @computed_once
    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {
                "debit": uuid_text(self.debit_account_id),
                "credit": uuid_text(self.credit_account_id),
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
    caller: str = "system"  # who asked: recorded with the outcome (audit), not part of the hash
    operation = "PostPendingTransfer"

    @computed_once
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
    caller: str = "system"  # who asked: recorded with the outcome (audit), not part of the hash
    operation = "VoidPendingTransfer"

    @computed_once
    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"pending_id": str(self.pending_id), "metadata": self.metadata})


@dataclass(frozen=True)
class ReverseTransfer:
    request_id: str
    transfer_id: uuid.UUID
    amount: int | None  # None: all that is left to reverse
    metadata: dict[str, str] = field(default_factory=dict)
    caller: str = "system"  # who asked: recorded with the outcome (audit), not part of the hash
    operation = "ReverseTransfer"

    @computed_once
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
class AdjustPending:
    request_id: str
    pending_id: uuid.UUID
    amount: int  # the hold's new total
    metadata: dict[str, str] = field(default_factory=dict)
    caller: str = "system"
    operation = "AdjustPendingTransfer"

    @computed_once
    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {"pending_id": str(self.pending_id), "amount": str(self.amount), "metadata": self.metadata},
        )


@dataclass(frozen=True)
class ExpireHold:
    """Internal: the server releases a hold whose timeout passed. Not stored as a request outcome;
    the hold's one-way state transition makes it happen at most once."""

    pending_id: uuid.UUID
    caller: str = "system"
    operation = "ExpireHold"

    @property
    def request_id(self) -> str:
        return f"expire:{self.pending_id}"

    @computed_once
    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"pending_id": str(self.pending_id)})


class SideEffect(abc.ABC):
    """A non-ledger mutation (an API key, a webhook endpoint, a chain registration) that still needs
    exactly-once semantics: the posting engine runs `execute` inside the batch transaction, under a
    savepoint, and stores its outcome under the request id like any other command."""

    request_id: str
    caller: str
    operation: str

    @abc.abstractmethod
    def request_hash(self) -> bytes: ...

    @abc.abstractmethod
    def execute(self, conn: Any, now: Any) -> bytes:
        """Do the work on `conn` (inside the transaction); return the serialized response, or raise
        a final LedgerError (FAILED_PRECONDITION) to reject. Must not commit or roll back."""


TransferCommand = CreateTransfer | PostPending | VoidPending | ReverseTransfer | AdjustPending
Command = (CreateAsset | CreateAccount | CreateTransfer | PostPending | VoidPending | ReverseTransfer | AdjustPending
           | ExpireHold)


@dataclass(frozen=True)
class TransferBatch:
    """CreateTransfers: items each with their own request id, plus the batch's own id."""

    request_id: str
    items: tuple[TransferCommand, ...]
    atomic: bool
    caller: str = "system"
    operation = "CreateTransfers"

    @computed_once
    def request_hash(self) -> bytes:
        return canonical_hash(
            self.operation,
            {"atomic": self.atomic, "items": [[i.request_id, i.request_hash().hex()] for i in self.items]},
        )


@dataclass(frozen=True)
class OperationBatch(TransferBatch):
    """ApplyOperations: like CreateTransfers, with any transfer operation as an item."""

    operation = "ApplyOperations"


Job = Command | TransferBatch | SideEffect


def attribute(job: Job, caller: str) -> Job:
    """The same job, made in `caller`'s name (the audit trail of its outcome)."""
    if isinstance(job, TransferBatch):
        return replace(job, caller=caller, items=tuple(replace(item, caller=caller) for item in job.items))
    return replace(job, caller=caller)  # type: ignore[type-var]
