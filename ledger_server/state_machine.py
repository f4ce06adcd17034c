"""The ledger's rules, applied in memory to one batch: pure, no I/O, deterministic given its inputs.

The posting engine loads every row a batch touches (under advisory locks), hands them to a
BatchState, applies the batch's commands in arrival order, then writes the accumulated effects in
one transaction. Later commands see the effects of earlier ones. An atomic group runs under a
savepoint: on any failure every change it made, to state and to effects, is undone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ledger_server.amounts import U128_MAX
from ledger_server.errors import rejected

# ledger.v1.TransferKind / TransferState / Side values, mirrored as plain ints for speed.
SINGLE_PHASE, HOLD, POST_PENDING, VOID_PENDING, EXPIRE_PENDING, REVERSAL = 1, 2, 3, 4, 5, 6
INCREASE_PENDING, DECREASE_PENDING = 7, 8
PENDING, POSTED, VOIDED, EXPIRED = 1, 2, 3, 4
DEBIT, CREDIT = 1, 2
REVERSIBLE_KINDS = (SINGLE_PHASE, POST_PENDING)


@dataclass(frozen=True)
class AccountState:
    """An account's counters as of this point in the batch (replaced, never mutated)."""

    id: uuid.UUID
    asset: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    version: int
    metadata: dict[str, str]
    created_at: dt.datetime


@dataclass(frozen=True)
class TransferRecord:
    """The immutable facts of a transfer, as stored in the transfers table."""

    id: uuid.UUID
    request_id: str
    kind: int
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    asset: str
    pending_id: uuid.UUID | None
    reverses_transfer_id: uuid.UUID | None
    expires_at: dt.datetime | None
    metadata: dict[str, str]
    created_at: dt.datetime


@dataclass(frozen=True)
class HoldState:
    state: int
    posted_amount: int
    amount: int  # currently held: the original amount plus adjustments
    settled_by: uuid.UUID | None = None


@dataclass(frozen=True)
class EntryRecord:
    transfer_id: uuid.UUID
    account_id: uuid.UUID
    side: int
    kind: int
    pending_change: int
    posted_change: int
    after: AccountState


@dataclass(frozen=True)
class Event:
    """An outbox event: its type (ledger.v1.EventType), the accounts it concerns, and its subject."""

    event_type: int
    account_ids: tuple[uuid.UUID, ...]
    subject: Any  # an AccountState, a TransferRecord or an asset (code, scale) pair


@dataclass
class Effects:
    """Everything a batch will write, in the order it happened."""

    new_assets: list[tuple[str, int]] = field(default_factory=list)
    new_accounts: list[uuid.UUID] = field(default_factory=list)
    transfers: list[TransferRecord] = field(default_factory=list)
    entries: list[EntryRecord] = field(default_factory=list)
    new_holds: list[TransferRecord] = field(default_factory=list)
    changed_holds: dict[uuid.UUID, HoldState] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    outcomes: list[tuple[str, Any]] = field(default_factory=list)


_MISSING = object()


class BatchState:
    """Loaded rows plus the batch's changes so far; every mutation is journaled for savepoints."""

    def __init__(
        self,
        now: dt.datetime,
        assets: dict[str, int],
        accounts: dict[uuid.UUID, AccountState],
        transfers: dict[uuid.UUID, TransferRecord],
        holds: dict[uuid.UUID, HoldState],
        reversed_totals: dict[uuid.UUID, int],
        new_id: Callable[[], uuid.UUID],
        outcomes: dict[str, Any],
    ) -> None:
        self.now = now
        self.assets = assets
        self.accounts = accounts
        self.transfers = transfers
        self.holds = holds
        self._holds_at_load = dict(holds)
        self.reversed_totals = reversed_totals
        self.new_id = new_id
        self.outcomes = outcomes
        self.effects = Effects()
        # Wire bytes of transfers already serialized as responses: their outbox events reuse them.
        self.serialized_transfers: dict[uuid.UUID, bytes] = {}
        self._journal: list[tuple[dict[Any, Any], Any, Any]] | None = None

    # -- savepoints -------------------------------------------------------------------------------

    def savepoint(self) -> tuple[int, ...]:
        assert self._journal is None, "savepoints do not nest"
        self._journal = []
        e = self.effects
        return (
            len(e.new_assets), len(e.new_accounts), len(e.transfers), len(e.entries),
            len(e.new_holds), len(e.events), len(e.outcomes),
        )

    def in_savepoint(self) -> bool:
        return self._journal is not None

    def release(self) -> None:
        assert self._journal is not None
        self._journal = None

    def rollback(self, mark: tuple[int, ...]) -> None:
        """Undo everything since savepoint(): state first (newest change first), then effects."""
        assert self._journal is not None
        for mapping, key, old in reversed(self._journal):
            if old is _MISSING:
                del mapping[key]
            else:
                mapping[key] = old
        self._journal = None
        e = self.effects
        del e.new_assets[mark[0]:]
        del e.new_accounts[mark[1]:]
        del e.transfers[mark[2]:]
        del e.entries[mark[3]:]
        del e.new_holds[mark[4]:]
        del e.events[mark[5]:]
        del e.outcomes[mark[6]:]
        for key, changed in list(e.changed_holds.items()):
            if self.holds.get(key) != changed:
                if self.holds[key] == self._holds_at_load.get(key):
                    del e.changed_holds[key]
                else:
                    e.changed_holds[key] = self.holds[key]

    def _set(self, mapping: dict[Any, Any], key: Any, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((mapping, key, mapping.get(key, _MISSING)))
        mapping[key] = value

    def record_outcome(self, request_id: str, outcome: Any) -> None:
        """Remember a request's final outcome: stored with the batch, replayed to later duplicates."""
        assert request_id not in self.outcomes, request_id
        self._set(self.outcomes, request_id, outcome)
        self.effects.outcomes.append((request_id, outcome))

    # -- commands ---------------------------------------------------------------------------------

    def create_asset(self, code: str, scale: int) -> None:
        if code in self.assets:
            raise rejected("ASSET_ALREADY_EXISTS", f"asset {code} already exists", asset=code)
        assert 0 <= scale <= 18
        self._set(self.assets, code, scale)
        self.effects.new_assets.append((code, scale))
        self.effects.events.append(Event(1, (), (code, scale, self.now)))

    def create_account(
        self, asset: str, debits_must_not_exceed_credits: bool, credits_must_not_exceed_debits: bool,
        metadata: dict[str, str],
    ) -> AccountState:
        if asset not in self.assets:
            raise rejected("ASSET_NOT_FOUND", f"asset {asset} does not exist", asset=asset)
        assert not (debits_must_not_exceed_credits and credits_must_not_exceed_debits)
        account = AccountState(
            self.new_id(), asset, 0, 0, 0, 0, debits_must_not_exceed_credits,
            credits_must_not_exceed_debits, 0, metadata, self.now,
        )
        self._set(self.accounts, account.id, account)
        self.effects.new_accounts.append(account.id)
        self.effects.events.append(Event(2, (account.id,), account))
        return account

    def create_transfer(
        self, request_id: str, debit_id: uuid.UUID, credit_id: uuid.UUID, amount: int, asset: str,
        pending: bool, timeout_seconds: int, metadata: dict[str, str],
    ) -> TransferRecord:
        assert amount > 0
        if asset not in self.assets:
            raise rejected("ASSET_NOT_FOUND", f"asset {asset} does not exist", asset=asset)
        if debit_id == credit_id:
            raise rejected("SAME_ACCOUNT", "debit and credit account are the same", account_id=str(debit_id))
        debit = self._account(debit_id, asset)
        credit = self._account(credit_id, asset)
        expires_at = None
        if pending and timeout_seconds > 0:
            expires_at = self.now + dt.timedelta(seconds=timeout_seconds)
        kind = HOLD if pending else SINGLE_PHASE
        transfer = TransferRecord(
            self.new_id(), request_id, kind, debit.id, credit.id, amount, asset, None, None,
            expires_at, metadata, self.now,
        )
        pending_change, posted_change = (amount, 0) if pending else (0, amount)
        self._post(transfer, debit, credit, pending_change, posted_change)
        if pending:
            self._set(self.holds, transfer.id, HoldState(PENDING, 0, amount))
            self.effects.new_holds.append(transfer)
        self.effects.events.append(Event(4 if pending else 3, (debit.id, credit.id), transfer))
        return transfer

    def expire_due(self, pending_id: uuid.UUID) -> None:
        """Release a hold whose timeout has passed (idempotent: nothing happens otherwise)."""
        hold = self.holds.get(pending_id)
        record = self.transfers.get(pending_id)
        if hold is None or record is None or hold.state != PENDING:
            return
        if record.expires_at is None or record.expires_at > self.now:
            return
        self._settle(record, None, EXPIRE_PENDING, f"expire:{pending_id}", {})

    def post_pending(
        self, request_id: str, pending_id: uuid.UUID, amount: int | None, metadata: dict[str, str]
    ) -> TransferRecord:
        record = self._pending(pending_id)
        held = self.holds[pending_id].amount
        if amount is not None and amount > held:
            raise rejected(
                "EXCEEDS_PENDING_AMOUNT", "amount exceeds the pending amount",
                pending_id=str(pending_id), pending_amount=str(held),
            )
        return self._settle(record, held if amount is None else amount, POST_PENDING, request_id, metadata)

    def adjust_pending(
        self, request_id: str, pending_id: uuid.UUID, amount: int, metadata: dict[str, str]
    ) -> TransferRecord:
        """Set a pending hold to a new total: raising it is checked like a new hold of the difference."""
        assert amount > 0
        record = self._pending(pending_id)
        hold = self.holds[pending_id]
        delta = amount - hold.amount
        if delta == 0:
            raise rejected("PENDING_AMOUNT_UNCHANGED", "the hold already has this amount", pending_id=str(pending_id))
        debit = self.accounts[record.debit_account_id]
        credit = self.accounts[record.credit_account_id]
        adjustment = TransferRecord(
            self.new_id(), request_id, INCREASE_PENDING if delta > 0 else DECREASE_PENDING, debit.id, credit.id,
            abs(delta), record.asset, record.id, None, None, metadata, self.now,
        )
        self._post(adjustment, debit, credit, delta, 0)
        adjusted = replace(hold, amount=amount)
        self._set(self.holds, pending_id, adjusted)
        self.effects.changed_holds[pending_id] = adjusted
        self.effects.events.append(Event(9, (debit.id, credit.id), adjustment))
        return adjustment

    def void_pending(self, request_id: str, pending_id: uuid.UUID, metadata: dict[str, str]) -> TransferRecord:
        return self._settle(self._pending(pending_id), None, VOID_PENDING, request_id, metadata)

    def reverse(
        self, request_id: str, transfer_id: uuid.UUID, amount: int | None, metadata: dict[str, str]
    ) -> TransferRecord:
        original = self.transfers.get(transfer_id)
        if original is None:
            raise rejected("TRANSFER_NOT_FOUND", "no such transfer", transfer_id=str(transfer_id))
        if original.kind not in REVERSIBLE_KINDS:
            raise rejected(
                "TRANSFER_NOT_REVERSIBLE", "only posted transfers are reversed (void a hold instead)",
                transfer_id=str(transfer_id),
            )
        remaining = original.amount - self.reversed_totals.get(transfer_id, 0)
        assert remaining >= 0, (transfer_id, remaining)
        amount = remaining if amount is None else amount
        if amount == 0 or amount > remaining:
            raise rejected(
                "EXCEEDS_REVERSIBLE_AMOUNT", "amount exceeds what is left to reverse",
                transfer_id=str(transfer_id), reversible_amount=str(remaining),
            )
        debit = self._account(original.credit_account_id, original.asset)
        credit = self._account(original.debit_account_id, original.asset)
        reversal = TransferRecord(
            self.new_id(), request_id, REVERSAL, debit.id, credit.id, amount, original.asset, None,
            original.id, None, metadata, self.now,
        )
        self._post(reversal, debit, credit, 0, amount)
        self._set(self.reversed_totals, transfer_id, self.reversed_totals.get(transfer_id, 0) + amount)
        self.effects.events.append(Event(8, (debit.id, credit.id), reversal))
        return reversal

    # -- internals --------------------------------------------------------------------------------

    def _account(self, account_id: uuid.UUID, asset: str) -> AccountState:
        account = self.accounts.get(account_id)
        if account is None:
            raise rejected("ACCOUNT_NOT_FOUND", "no such account", account_id=str(account_id))
        if account.asset != asset:
            raise rejected(
                "ASSET_MISMATCH", f"account holds {account.asset}, not {asset}",
                account_id=str(account_id), account_asset=account.asset,
            )
        return account

    def _pending(self, pending_id: uuid.UUID) -> TransferRecord:
        record = self.transfers.get(pending_id)
        hold = self.holds.get(pending_id)
        if record is None or record.kind != HOLD or hold is None:
            raise rejected("PENDING_NOT_FOUND", "no such pending transfer", pending_id=str(pending_id))
        if hold.state == PENDING and record.expires_at is not None and record.expires_at <= self.now:
            raise rejected("PENDING_EXPIRED", "the hold expired", pending_id=str(pending_id))
        reason = {POSTED: "PENDING_ALREADY_POSTED", VOIDED: "PENDING_ALREADY_VOIDED", EXPIRED: "PENDING_EXPIRED"}
        if hold.state != PENDING:
            raise rejected(reason[hold.state], "the hold is no longer pending", pending_id=str(pending_id))
        return record

    def _settle(
        self, hold: TransferRecord, posted: int | None, kind: int, request_id: str, metadata: dict[str, str]
    ) -> TransferRecord:
        """Post (part of) a hold or release it: the pending counters drop by the whole hold amount."""
        debit = self.accounts[hold.debit_account_id]
        credit = self.accounts[hold.credit_account_id]
        held = self.holds[hold.id].amount
        posted_amount = posted or 0
        amount = posted_amount if kind == POST_PENDING else held
        assert amount > 0 and posted_amount <= held
        settlement = TransferRecord(
            self.new_id(), request_id, kind, debit.id, credit.id, amount, hold.asset, hold.id, None, None,
            metadata, self.now,
        )
        self._post(settlement, debit, credit, -held, posted_amount)
        state = {POST_PENDING: POSTED, VOID_PENDING: VOIDED, EXPIRE_PENDING: EXPIRED}[kind]
        settled = HoldState(state, posted_amount, held, settlement.id)
        self._set(self.holds, hold.id, settled)
        self.effects.changed_holds[hold.id] = settled
        event_type = {POST_PENDING: 5, VOID_PENDING: 6, EXPIRE_PENDING: 7}[kind]
        self.effects.events.append(Event(event_type, (debit.id, credit.id), settlement))
        return settlement

    def _post(
        self, transfer: TransferRecord, debit: AccountState, credit: AccountState, pending_change: int,
        posted_change: int,
    ) -> None:
        """Apply one transfer to both accounts, checking overflow and balance limits first."""
        new_debit = AccountState(  # the constructor, not dataclasses.replace: this is the hot path
            debit.id, debit.asset, debit.debits_pending + pending_change, debit.debits_posted + posted_change,
            debit.credits_pending, debit.credits_posted, debit.debits_must_not_exceed_credits,
            debit.credits_must_not_exceed_debits, debit.version + 1, debit.metadata, debit.created_at,
        )
        new_credit = AccountState(
            credit.id, credit.asset, credit.debits_pending, credit.debits_posted,
            credit.credits_pending + pending_change, credit.credits_posted + posted_change,
            credit.debits_must_not_exceed_credits, credit.credits_must_not_exceed_debits, credit.version + 1,
            credit.metadata, credit.created_at,
        )
        _check_limits(new_debit)
        _check_limits(new_credit)
        self._set(self.accounts, debit.id, new_debit)
        self._set(self.accounts, credit.id, new_credit)
        self._set(self.transfers, transfer.id, transfer)
        self.effects.transfers.append(transfer)
        entries = self.effects.entries
        kind = transfer.kind
        entries.append(EntryRecord(transfer.id, debit.id, DEBIT, kind, pending_change, posted_change, new_debit))
        entries.append(EntryRecord(transfer.id, credit.id, CREDIT, kind, pending_change, posted_change, new_credit))


def _check_limits(account: AccountState) -> None:
    counters = (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted)
    assert min(counters) >= 0, ("counter below zero", account)
    if max(counters) > U128_MAX or account.debits_pending + account.debits_posted > U128_MAX \
            or account.credits_pending + account.credits_posted > U128_MAX:
        raise rejected("OVERFLOW", "a counter would exceed 2^128-1", account_id=str(account.id))
    if account.debits_must_not_exceed_credits and \
            account.debits_pending + account.debits_posted > account.credits_posted:
        raise rejected("INSUFFICIENT_FUNDS", "debits would exceed credits", account_id=str(account.id))
    if account.credits_must_not_exceed_debits and \
            account.credits_pending + account.credits_posted > account.debits_posted:
        raise rejected("CREDIT_LIMIT_EXCEEDED", "credits would exceed debits", account_id=str(account.id))

