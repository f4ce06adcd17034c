"""The card lifecycle, pure: (transaction state, event) -> the ledger operations and the next state.

Facts merge one way only, so the same events in any order end in the same ledger state:
- the authorized total is the one of the newest authorization event (processor time, then token);
- a full reversal, an expiry, a processor decline or a final clearing closes the transaction for good;
- clearings, returns and return reversals add up.
The hold the ledger should carry is a function of the facts (`desired_hold`): nothing once closed,
otherwise what is authorized and not yet cleared. Each event moves the ledger from the state it is in
to that one, together with the event's own money movement, in one atomic batch.

`hold_gone` / `no_raise` re-plan after the ledger said the hold is no longer pending (it expired on
the ledger's own timer) or that a raise does not fit the cardholder's balance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ledger_cards.model import (
    AUTH_FAMILY,
    CardEvent,
    EventType,
    ProgramAccounts,
    TransactionState,
)
from ledger_client import AdjustPending, NewTransfer, Operation, PostPending, Reverse, VoidPending

BASIS_POINTS = 10_000
PLACED = "(placed by this plan)"  # stands for the new hold's id until the ledger returns it


@dataclass(frozen=True)
class LifecycleConfig:
    hold_timeout_seconds: int = 10 * 86_400  # a hold the processor never settles is released by the ledger
    over_capture_tolerance_bps: int = 2_000  # captures up to 20% over the authorization are normal (tips)

    def __post_init__(self) -> None:
        assert 0 <= self.hold_timeout_seconds <= 400 * 86_400, self
        assert 0 <= self.over_capture_tolerance_bps <= 10 * BASIS_POINTS, self


@dataclass(frozen=True)
class Plan:
    """What to send to the ledger (one atomic batch) and the state once it committed."""

    operations: tuple[Operation, ...]
    state: TransactionState
    hold_op: int | None = None  # the operation placing a hold: its transfer id becomes state.hold_id
    credit_op: int | None = None  # the operation crediting a return: reversals of the return reverse it
    note: str = ""


def hold_request_id(transaction_token: str) -> str:
    """The ledger request id of the hold for an authorization: the same from the real-time path and
    from a webhook, so whichever comes second replays the first instead of holding twice."""
    return f"card:auth:{transaction_token}"


def hold_metadata(card_id: str, transaction_token: str) -> dict[str, str]:
    return {"card_id": card_id, "card_transaction": transaction_token, "card_flow": "authorization"}


def authorization_hold(
    account_id: str, accounts: ProgramAccounts, amount: int, card_id: str, transaction_token: str,
    config: LifecycleConfig, request_id: str | None = None,
) -> NewTransfer:
    """The hold of an authorization: cardholder -> merchant settlement, pending."""
    return NewTransfer(
        debit_account_id=account_id, credit_account_id=accounts.merchant_settlement, amount=amount,
        asset=accounts.asset, pending=True, hold_timeout_seconds=config.hold_timeout_seconds,
        metadata=hold_metadata(card_id, transaction_token),
        request_id=request_id or hold_request_id(transaction_token),
    )


def merge(state: TransactionState, event: CardEvent) -> TransactionState:
    """The state's facts with the event's added (one way only)."""
    kind = event.type
    closed = state.closed_reason
    if kind == EventType.AUTHORIZATION and event.status == "DECLINED":
        return replace(state, closed_reason=closed or "declined")
    if kind == EventType.AUTHORIZATION_EXPIRY:
        return replace(state, closed_reason=closed or "expired")
    if kind in AUTH_FAMILY:
        total = event.authorized_amount if event.authorized_amount is not None else event.amount
        key = (event.created, event.token)
        if state.auth_key is None or key > state.auth_key:
            state = replace(state, auth_total=total, auth_key=key)
        if kind == EventType.AUTHORIZATION_REVERSAL and total == 0:
            state = replace(state, closed_reason=closed or "reversed")
        return state
    if kind == EventType.CLEARING:
        state = replace(state, cleared_total=state.cleared_total + event.amount)
        return replace(state, closed_reason=closed or "cleared") if event.final else state
    if kind == EventType.RETURN:
        return replace(state, returned_total=state.returned_total + event.amount)
    if kind == EventType.RETURN_REVERSAL:
        return replace(state, return_reversed=state.return_reversed + event.amount)
    return state


def desired_hold(state: TransactionState) -> int:
    """What the ledger hold should be, given the facts: nothing once closed."""
    if state.closed_reason is not None or state.auth_total is None:
        return 0
    return max(0, state.auth_total - state.cleared_total)


def plan(
    state: TransactionState, event: CardEvent, accounts: ProgramAccounts, config: LifecycleConfig,
    *, hold_gone: bool = False, no_raise: bool = False, no_reverse: bool = False,
) -> Plan:
    """The ledger operations that apply `event` to a transaction in `state`."""
    assert event.transaction_token == state.token, (event.transaction_token, state.token)
    assert event.currency == state.asset == accounts.asset, (event.currency, state.asset, accounts.asset)
    if hold_gone:
        state = replace(state, hold_open=False, hold_amount=0)
    merged = merge(state, event)
    if event.type == EventType.CLEARING:
        return _clearing(state, merged, event, accounts, config, no_raise)
    if event.type == EventType.RETURN:
        return _return(merged, event, accounts)
    if event.type == EventType.RETURN_REVERSAL:
        return _return_reversal(merged, event, accounts, no_reverse)
    if event.type in AUTH_FAMILY:
        return _authorization_change(merged, event, accounts, config, no_raise)
    return Plan((), merged, note="no money moves")


def _authorization_change(
    merged: TransactionState, event: CardEvent, accounts: ProgramAccounts, config: LifecycleConfig, no_raise: bool
) -> Plan:
    target = desired_hold(merged)
    if merged.hold_open:
        assert merged.hold_id is not None
        if target == 0:
            closed = replace(merged, hold_open=False, hold_amount=0)
            return Plan((VoidPending(pending_id=merged.hold_id, metadata=_meta(event)),), closed, note="hold voided")
        if target == merged.hold_amount:
            return Plan((), merged, note="hold unchanged")
        if target > merged.hold_amount and no_raise:
            return Plan((), replace(merged, review="hold_below_authorized"), note="raise refused by the balance")
        adjusted = replace(merged, hold_amount=target)
        return Plan((AdjustPending(pending_id=merged.hold_id, amount=target, metadata=_meta(event)),), adjusted,
                    note=f"hold set to {target}")
    if target > 0 and not merged.hold_attempted:
        hold = authorization_hold(merged.account_id, accounts, target, merged.card_id, merged.token, config)
        placed = replace(merged, hold_attempted=True, hold_open=True, hold_amount=target, hold_id=PLACED)
        return Plan((hold,), placed, hold_op=0, note=f"hold placed for {target}")
    return Plan((), merged, note="no hold to change")


def _clearing(
    before: TransactionState, merged: TransactionState, event: CardEvent, accounts: ProgramAccounts,
    config: LifecycleConfig, no_raise: bool,
) -> Plan:
    amount = event.amount
    target = desired_hold(merged)
    operations: list[Operation] = []
    state = merged
    excess = amount
    if before.hold_open:
        assert before.hold_id is not None
        current = before.hold_amount
        if target == 0:
            posted = min(amount, current)
            operations.append(PostPending(pending_id=before.hold_id, amount=posted, metadata=_meta(event)))
            excess = amount - posted
            state = replace(state, hold_open=False, hold_amount=0)
            allowed = (merged.auth_total or current) * config.over_capture_tolerance_bps // BASIS_POINTS
            if excess > allowed:
                state = replace(state, review="over_capture_beyond_tolerance")
        elif target != current and not (target > current and no_raise):
            operations.append(AdjustPending(pending_id=before.hold_id, amount=target, metadata=_meta(event)))
            state = replace(state, hold_amount=target)
    if excess > 0:
        operations.append(NewTransfer(
            debit_account_id=merged.account_id, credit_account_id=accounts.merchant_settlement, amount=excess,
            asset=merged.asset, metadata=_meta(event),
        ))
    operations.extend(_fees(event, accounts, purchase=True))
    how = "posted from the hold" if before.hold_open else "force posted"
    return Plan(tuple(operations), state, note=f"cleared {amount} ({how})")


def _return(merged: TransactionState, event: CardEvent, accounts: ProgramAccounts) -> Plan:
    metadata = _meta(event)
    if event.original_transaction_token:
        metadata["original_transaction"] = event.original_transaction_token
    credit = NewTransfer(
        debit_account_id=accounts.merchant_settlement, credit_account_id=merged.account_id, amount=event.amount,
        asset=merged.asset, metadata=metadata,
    )
    operations: tuple[Operation, ...] = (credit, *_fees(event, accounts, purchase=False))
    first = merged.credit_transfer_id is None
    return Plan(operations, merged, credit_op=0 if first else None, note=f"returned {event.amount}")


def _return_reversal(
    merged: TransactionState, event: CardEvent, accounts: ProgramAccounts, no_reverse: bool
) -> Plan:
    if merged.credit_transfer_id is not None and not no_reverse:
        reverse = Reverse(transfer_id=merged.credit_transfer_id, amount=event.amount, metadata=_meta(event))
        return Plan((reverse,), merged, note=f"return reversed by {event.amount}")
    debit = NewTransfer(
        debit_account_id=merged.account_id, credit_account_id=accounts.merchant_settlement, amount=event.amount,
        asset=merged.asset, metadata=_meta(event),
    )
    return Plan((debit,), merged, note=f"return reversal of {event.amount} posted on its own")


def _fees(event: CardEvent, accounts: ProgramAccounts, *, purchase: bool) -> list[Operation]:
    """Interchange (earned on purchases, given back on returns) and network fees, each its own transfer."""
    fees: list[Operation] = []
    if event.interchange > 0:
        debit, credit = (accounts.processor_receivable, accounts.fee_revenue) if purchase else \
            (accounts.fee_revenue, accounts.processor_receivable)
        fees.append(NewTransfer(debit_account_id=debit, credit_account_id=credit, amount=event.interchange,
                                asset=accounts.asset, metadata=_meta(event, "interchange")))
    if event.network_fee > 0:
        fees.append(NewTransfer(
            debit_account_id=accounts.network_fees, credit_account_id=accounts.processor_receivable,
            amount=event.network_fee, asset=accounts.asset, metadata=_meta(event, "network_fee"),
        ))
    return fees


def _meta(event: CardEvent, part: str = "") -> dict[str, str]:
    meta = {"card_event": event.token, "card_event_type": event.type.value, "card_transaction": event.transaction_token}
    if part:
        meta["card_part"] = part
    return meta
