"""Typed, immutable results: the SDK's view of ledger.v1 messages.

Amounts and counters are `int` minor units (exact, never float); timestamps are aware UTC
datetimes (None when the server left an optional one unset); enums are `StrEnum`s named as in the
proto. Each class has `from_proto` and keeps no reference to the message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from google.protobuf import timestamp_pb2

from ledger.v1 import admin_pb2
from ledger.v1 import ledger_pb2 as pb
from ledger_client.errors import LedgerError, build_error, status_code
from ledger_client.money import Amount, parse_wire_amount

T = TypeVar("T")


class TransferState(StrEnum):
    PENDING = "PENDING"  # a hold: reserved, not yet posted
    POSTED = "POSTED"
    VOIDED = "VOIDED"
    EXPIRED = "EXPIRED"
    TRANSFER_STATE_UNSPECIFIED = "TRANSFER_STATE_UNSPECIFIED"


class TransferKind(StrEnum):
    SINGLE_PHASE = "SINGLE_PHASE"
    HOLD = "HOLD"
    POST_PENDING = "POST_PENDING"
    VOID_PENDING = "VOID_PENDING"
    EXPIRE_PENDING = "EXPIRE_PENDING"
    REVERSAL = "REVERSAL"
    INCREASE_PENDING = "INCREASE_PENDING"
    DECREASE_PENDING = "DECREASE_PENDING"
    TRANSFER_KIND_UNSPECIFIED = "TRANSFER_KIND_UNSPECIFIED"


class Side(StrEnum):
    DEBIT = "DEBIT"
    CREDIT = "CREDIT"
    SIDE_UNSPECIFIED = "SIDE_UNSPECIFIED"


def _time(stamp: timestamp_pb2.Timestamp) -> dt.datetime:
    return stamp.ToDatetime(tzinfo=dt.UTC)


def _optional_time(message: object, name: str) -> dt.datetime | None:
    assert hasattr(message, "HasField")
    return _time(getattr(message, name)) if message.HasField(name) else None


def _metadata(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@dataclass(frozen=True)
class Asset:
    code: str
    scale: int  # minor units per major unit = 10**scale
    created_at: dt.datetime

    @classmethod
    def from_proto(cls, message: pb.Asset) -> Asset:
        return cls(code=message.code, scale=message.scale, created_at=_time(message.created_at))


@dataclass(frozen=True)
class _Counters:
    """The four counters of an account; balances are derived from them (credit-normal view)."""

    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def posted_balance(self) -> int:
        """credits_posted - debits_posted: what a credit-normal account (a wallet) holds.

        Negate it for a debit-normal account (a funding or settlement account)."""
        return self.credits_posted - self.debits_posted

    @property
    def pending_balance(self) -> int:
        """credits_pending - debits_pending: the net of open holds."""
        return self.credits_pending - self.debits_pending

    @property
    def available_balance(self) -> int:
        """credits_posted - debits_posted - debits_pending: what may still be debited from a wallet."""
        return self.credits_posted - self.debits_posted - self.debits_pending


def _counters(message: pb.Account | pb.AccountBalance | pb.Entry) -> dict[str, int]:
    return {
        "debits_pending": parse_wire_amount(message.debits_pending),
        "debits_posted": parse_wire_amount(message.debits_posted),
        "credits_pending": parse_wire_amount(message.credits_pending),
        "credits_posted": parse_wire_amount(message.credits_posted),
    }


@dataclass(frozen=True)
class Account(_Counters):
    id: str
    asset: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    created_at: dt.datetime
    version: int  # the position of the account's latest entry
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_proto(cls, message: pb.Account) -> Account:
        return cls(
            id=message.id, asset=message.asset, **_counters(message),
            debits_must_not_exceed_credits=message.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=message.credits_must_not_exceed_debits,
            created_at=_time(message.created_at), version=message.version,
            metadata=_metadata(message.metadata),
        )


@dataclass(frozen=True)
class Balance(_Counters):
    account_id: str
    asset: str
    version: int  # the account version these counters belong to (0: before any entry)
    as_of: dt.datetime | None

    @classmethod
    def from_proto(cls, message: pb.AccountBalance) -> Balance:
        return cls(
            account_id=message.account_id, asset=message.asset, **_counters(message), version=message.version,
            as_of=_optional_time(message, "as_of"),
        )


@dataclass(frozen=True)
class Entry(_Counters):
    """One posting against one account; the counters are the account's after this entry."""

    id: int
    transfer_id: str
    account_id: str
    side: Side
    kind: TransferKind
    pending_change: int  # signed change of the side's pending counter
    posted_change: int
    account_version: int
    created_at: dt.datetime

    @classmethod
    def from_proto(cls, message: pb.Entry) -> Entry:
        return cls(
            id=message.id, transfer_id=message.transfer_id, account_id=message.account_id,
            side=Side(pb.Side.Name(message.side)), kind=TransferKind(pb.TransferKind.Name(message.kind)),
            pending_change=parse_wire_amount(message.pending_change),
            posted_change=parse_wire_amount(message.posted_change), account_version=message.account_version,
            **_counters(message), created_at=_time(message.created_at),
        )


@dataclass(frozen=True)
class Transfer:
    id: str
    request_id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    asset: str
    state: TransferState  # for holds: the state when the server produced this (get_transfer: current)
    kind: TransferKind
    created_at: dt.datetime
    pending_id: str | None = None  # the hold this transfer posts, voids or expires
    reverses_transfer_id: str | None = None
    expires_at: dt.datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_proto(cls, message: pb.Transfer) -> Transfer:
        return cls(
            id=message.id, request_id=message.request_id, debit_account_id=message.debit_account_id,
            credit_account_id=message.credit_account_id, amount=parse_wire_amount(message.amount),
            asset=message.asset, state=TransferState(pb.TransferState.Name(message.state)),
            kind=TransferKind(pb.TransferKind.Name(message.kind)), created_at=_time(message.created_at),
            pending_id=message.pending_id or None, reverses_transfer_id=message.reverses_transfer_id or None,
            expires_at=_optional_time(message, "expires_at"), metadata=_metadata(message.metadata),
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; pass `next_page_token` back for the next (empty on the last page)."""

    items: tuple[T, ...]
    next_page_token: str

    @property
    def is_last(self) -> bool:
        return not self.next_page_token

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class NewTransfer:
    """One item of `create_transfers`. Without a request_id the SDK assigns one (kept across retries)."""

    debit_account_id: str
    credit_account_id: str
    amount: Amount  # int minor units, or Decimal / str major units
    asset: str
    pending: bool = False
    hold_timeout_seconds: int = 0
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    request_id: str | None = None


@dataclass(frozen=True)
class PostPending:
    """An `apply_operations` item: post a hold (all of it, or `amount` minor units)."""

    pending_id: str
    amount: int | None = None
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    request_id: str | None = None


@dataclass(frozen=True)
class VoidPending:
    """An `apply_operations` item: release a hold."""

    pending_id: str
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    request_id: str | None = None


@dataclass(frozen=True)
class Reverse:
    """An `apply_operations` item: reverse a posted transfer (all that is left, or `amount` minor units)."""

    transfer_id: str
    amount: int | None = None
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    request_id: str | None = None


@dataclass(frozen=True)
class AdjustPending:
    """An `apply_operations` item: set a hold to a new total of `amount` minor units."""

    pending_id: str
    amount: int
    metadata: Mapping[str, str] | None = field(default=None, hash=False)
    request_id: str | None = None


Operation = NewTransfer | PostPending | VoidPending | Reverse | AdjustPending


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one batch item: a transfer, or the typed error it failed with."""

    request_id: str
    transfer: Transfer | None
    error: LedgerError | None

    def __post_init__(self) -> None:
        assert (self.transfer is None) != (self.error is None), self

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> Transfer:
        """The transfer, or raise the item's error."""
        if self.error is not None:
            raise self.error
        assert self.transfer is not None
        return self.transfer


@dataclass(frozen=True)
class BatchResult:
    """The outcomes of create_transfers, one per item, in request order."""

    results: tuple[ItemResult, ...]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.results)

    @property
    def transfers(self) -> tuple[Transfer, ...]:
        return tuple(item.transfer for item in self.results if item.transfer is not None)

    @property
    def errors(self) -> tuple[LedgerError, ...]:
        return tuple(item.error for item in self.results if item.error is not None)

    def __iter__(self) -> Iterator[ItemResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @classmethod
    def from_proto(
        cls, message: pb.CreateTransfersResponse | pb.ApplyOperationsResponse, request_ids: tuple[str, ...]
    ) -> BatchResult:
        assert len(message.results) == len(request_ids), (len(message.results), len(request_ids))
        items = []
        for request_id, result in zip(request_ids, message.results, strict=True):
            if result.WhichOneof("outcome") == "transfer":
                items.append(ItemResult(request_id, Transfer.from_proto(result.transfer), None))
            else:
                error = build_error(
                    status_code(result.error.code), result.error.reason, result.error.message,
                    dict(result.error.metadata), request_id=request_id,
                )
                items.append(ItemResult(request_id, None, error))
        return cls(tuple(items))


# -- access control, audit and verification (scope `admin`) --------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who may call: an API key or a TLS client certificate subject, with scopes and an optional tenant."""

    id: str
    kind: str  # "api_key" or "certificate"
    name: str
    scopes: tuple[str, ...]
    tenant: str | None
    certificate_subject: str | None
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None

    @classmethod
    def from_proto(cls, message: admin_pb2.Caller) -> Caller:
        return cls(
            id=message.id, kind=message.kind, name=message.name, scopes=tuple(message.scopes),
            tenant=message.tenant or None, certificate_subject=message.certificate_subject or None,
            created_at=_time(message.created_at), created_by=message.created_by,
            revoked_at=_optional_time(message, "revoked_at"),
        )


@dataclass(frozen=True)
class NewApiKey:
    """A created API key. `key` is shown once: a replay of the same request returns it empty."""

    caller: Caller
    key: str = field(repr=False)

    @classmethod
    def from_proto(cls, message: admin_pb2.CreateApiKeyResponse) -> NewApiKey:
        return cls(caller=Caller.from_proto(message.caller), key=message.key)


@dataclass(frozen=True)
class AuditRecord:
    """One stored mutation outcome: who did what, when, and how it ended (code 0: success)."""

    request_id: str
    operation: str
    caller: str
    code: int
    created_at: dt.datetime

    @classmethod
    def from_proto(cls, message: admin_pb2.AuditRecord) -> AuditRecord:
        return cls(
            request_id=message.request_id, operation=message.operation, caller=message.caller,
            code=message.code, created_at=_time(message.created_at),
        )


@dataclass(frozen=True)
class InvariantViolation:
    invariant: str
    rows: tuple[str, ...]  # the offending rows as JSON objects (at most 20)


@dataclass(frozen=True)
class Verification:
    """The outcome of VerifyLedger: every invariant checked on the live database."""

    ok: bool
    checked: tuple[str, ...]
    violations: tuple[InvariantViolation, ...]

    @classmethod
    def from_proto(cls, message: admin_pb2.VerifyLedgerResponse) -> Verification:
        return cls(
            ok=message.ok, checked=tuple(message.checked),
            violations=tuple(InvariantViolation(v.invariant, tuple(v.rows)) for v in message.violations),
        )
