"""The card model: cards, processor events, per-transaction lifecycle state, program accounts.

Plain frozen dataclasses, no I/O. Amounts are int minor units of the card's asset (never float).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class CardState(IntEnum):
    ACTIVE = 1
    FROZEN = 2
    CLOSED = 3  # terminal


class EventType(StrEnum):
    """Webhook event types, modelled on the common processor vocabularies (Lithic, Marqeta)."""

    AUTHORIZATION = "authorization"                        # the processor's record of an authorization
    AUTHORIZATION_ADVICE = "authorization.advice"          # the authorized total changed
    AUTHORIZATION_INCREMENTAL = "authorization.incremental"  # the authorized total went up
    AUTHORIZATION_REVERSAL = "authorization.reversal"      # down (partial) or to zero (full)
    AUTHORIZATION_EXPIRY = "authorization.expiry"          # the processor expired what is left
    CLEARING = "clearing"                                  # (part of) the money moves; `final` closes
    RETURN = "return"                                      # a refund / credit to the cardholder
    RETURN_REVERSAL = "return.reversal"                    # a return taken back
    BALANCE_INQUIRY = "balance_inquiry"                    # no money moves


AUTH_FAMILY = frozenset({
    EventType.AUTHORIZATION, EventType.AUTHORIZATION_ADVICE, EventType.AUTHORIZATION_INCREMENTAL,
    EventType.AUTHORIZATION_REVERSAL, EventType.AUTHORIZATION_EXPIRY,
})


class ProgramRole(StrEnum):
    """The card program's ledger accounts, one of each per asset."""

    MERCHANT_SETTLEMENT = "merchant_settlement"      # counterparty of purchases and returns
    PROCESSOR_RECEIVABLE = "processor_receivable"    # interchange owed to us, net of network fees
    FEE_REVENUE = "fee_revenue"                      # interchange earned
    NETWORK_FEES = "network_fees"                    # card-network fees charged to us
    CARDHOLDER_RECEIVABLE = "cardholder_receivable"  # captures beyond a cardholder's balance


@dataclass(frozen=True)
class ProgramAccounts:
    asset: str
    merchant_settlement: str
    processor_receivable: str
    fee_revenue: str
    network_fees: str
    cardholder_receivable: str

    @classmethod
    def from_roles(cls, asset: str, ids: dict[str, str]) -> ProgramAccounts:
        return cls(asset=asset, **{role.value: ids[role.value] for role in ProgramRole})


@dataclass(frozen=True)
class Card:
    id: str
    token: str  # the processor's card token
    account_id: str  # the cardholder's ledger account
    asset: str
    state: CardState
    daily_limit: int | None
    monthly_limit: int | None
    blocked_mccs: tuple[str, ...]
    tenant: str | None = None
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    version: int = 1  # cards.version: bumped by every change (migration 0010)


@dataclass(frozen=True)
class Merchant:
    mcc: str = ""
    name: str = ""
    country: str = ""


@dataclass(frozen=True)
class AuthorizationRequest:
    """The processor asks, in real time, whether to approve."""

    token: str  # the authorization (transaction) token: the ledger hold's request id is derived from it
    card_token: str
    amount: int
    currency: str
    created: dt.datetime
    merchant: Merchant
    partial_approval_capable: bool = False


@dataclass(frozen=True)
class CardEvent:
    """One webhook event. `token` is the processor's event token: the dedupe key."""

    token: str
    type: EventType
    transaction_token: str
    card_token: str
    created: dt.datetime
    currency: str
    amount: int = 0  # the event's own amount (cleared, returned, reversed, incremented)
    authorized_amount: int | None = None  # authorization events: the transaction's new authorized total
    status: str | None = None  # authorization: APPROVED or DECLINED
    final: bool = True  # clearing: the last clearing of the authorization
    interchange: int = 0
    network_fee: int = 0
    original_transaction_token: str | None = None  # returns linked to a purchase
    merchant: Merchant = field(default_factory=Merchant)


@dataclass(frozen=True)
class TransactionState:
    """Merged facts of one processor transaction and the ledger state they produced."""

    token: str
    card_id: str
    account_id: str
    asset: str
    auth_total: int | None = None
    auth_key: tuple[dt.datetime, str] | None = None  # (processor time, event token) of auth_total
    closed_reason: str | None = None
    hold_attempted: bool = False
    hold_id: str | None = None
    hold_amount: int = 0
    hold_open: bool = False
    cleared_total: int = 0
    returned_total: int = 0
    return_reversed: int = 0
    credit_transfer_id: str | None = None
    review: str | None = None

    def __post_init__(self) -> None:
        assert not self.hold_open or (self.hold_id is not None and self.hold_amount > 0), self
        assert min(self.hold_amount, self.cleared_total, self.returned_total, self.return_reversed) >= 0, self
