"""The pure lifecycle planner against an in-memory ledger: any delivery order of a lifecycle's events
ends in the same, expected balances (hypothesis draws the lifecycles and the orders)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_cards.lifecycle import PLACED, LifecycleConfig, desired_hold, plan
from ledger_cards.model import CardEvent, EventType, ProgramAccounts, ProgramRole, TransactionState
from ledger_cards.simulator import Expected, LifecycleFactory, SimCard
from ledger_client import AdjustPending, NewTransfer, Operation, PostPending, Reverse, VoidPending

CONFIG = LifecycleConfig()


class HoldGoneError(Exception):
    pass


class MiniLedger:
    """Counters, holds and transfers; an atomic batch applies all or nothing."""

    def __init__(self) -> None:
        self.counters: dict[str, list[int]] = {}
        self.holds: dict[str, list[object]] = {}  # id -> [debit, credit, amount, pending]
        self.transfers: dict[str, tuple[str, str, int]] = {}
        self.reversed: dict[str, int] = {}

    def _move(self, debit: str, credit: str, pending: int, posted: int) -> None:
        d = self.counters.setdefault(debit, [0, 0, 0, 0])
        c = self.counters.setdefault(credit, [0, 0, 0, 0])
        d[0] += pending
        d[1] += posted
        c[2] += pending
        c[3] += posted

    def apply(self, operations: tuple[Operation, ...]) -> list[str]:
        snapshot = ({k: list(v) for k, v in self.counters.items()}, {k: list(v) for k, v in self.holds.items()},
                    dict(self.transfers), dict(self.reversed))
        try:
            return [self._one(op) for op in operations]
        except HoldGoneError:
            self.counters, self.holds, self.transfers, self.reversed = snapshot
            raise

    def _one(self, op: Operation) -> str:
        new_id = str(uuid.uuid4())
        if isinstance(op, NewTransfer):
            amount = int(op.amount)
            if op.pending:
                self.holds[new_id] = [op.debit_account_id, op.credit_account_id, amount, True]
                self._move(op.debit_account_id, op.credit_account_id, amount, 0)
            else:
                self.transfers[new_id] = (op.debit_account_id, op.credit_account_id, amount)
                self._move(op.debit_account_id, op.credit_account_id, 0, amount)
            return new_id
        if isinstance(op, Reverse):
            debit, credit, amount = self.transfers[op.transfer_id]
            value = int(op.amount or amount)
            assert self.reversed.get(op.transfer_id, 0) + value <= amount
            self.reversed[op.transfer_id] = self.reversed.get(op.transfer_id, 0) + value
            self._move(credit, debit, 0, value)
            return new_id
        assert isinstance(op, PostPending | VoidPending | AdjustPending)
        hold = self.holds[op.pending_id]
        if not hold[3]:
            raise HoldGoneError
        debit, credit, held = str(hold[0]), str(hold[1]), int(str(hold[2]))
        if isinstance(op, AdjustPending):
            self._move(debit, credit, int(op.amount) - held, 0)
            hold[2] = int(op.amount)
        else:
            posted = int(op.amount or held) if isinstance(op, PostPending) else 0
            assert posted <= held
            self._move(debit, credit, -held, posted)
            hold[3] = False
        return new_id


def _program() -> ProgramAccounts:
    return ProgramAccounts.from_roles("USD", {role.value: role.value for role in ProgramRole})


def _apply_event(ledger: MiniLedger, state: TransactionState, event: CardEvent) -> TransactionState:
    accounts = _program()
    hold_gone = False
    for _ in range(3):
        current = plan(state, event, accounts, CONFIG, hold_gone=hold_gone)
        try:
            ids = ledger.apply(current.operations)
        except HoldGoneError:
            hold_gone = True
            continue
        new = current.state
        if current.hold_op is not None:
            assert new.hold_id == PLACED
            new = replace(new, hold_id=ids[current.hold_op])
        if current.credit_op is not None:
            new = replace(new, credit_transfer_id=ids[current.credit_op])
        return new
    raise AssertionError("no plan fitted")


def _run(seed: int, order_seed: int) -> tuple[dict[str, list[int]], Expected]:
    rng = random.Random(seed)
    expected = Expected()
    program = {role.value: role.value for role in ProgramRole}
    factory = LifecycleFactory(rng, "USD", program, expected)
    card = SimCard("card_1", "cardholder")
    ledger = MiniLedger()
    states: dict[str, TransactionState] = {}
    events: list[CardEvent] = []
    for _ in range(6):
        life = factory.build(card)
        if life.authorize is not None:  # the real-time path came first and placed the hold
            hold = ledger.apply((NewTransfer(debit_account_id="cardholder",
                                             credit_account_id=ProgramRole.MERCHANT_SETTLEMENT.value,
                                             amount=life.authorize, asset="USD", pending=True),))[0]
            states[life.token] = TransactionState(
                token=life.token, card_id="c", account_id="cardholder", asset="USD", auth_total=life.authorize,
                auth_key=(life.created, ""), hold_attempted=True, hold_id=hold, hold_amount=life.authorize,
                hold_open=True,
            )
        events += life.events
    random.Random(order_seed).shuffle(events)
    for event in events:
        state = states.get(event.transaction_token) or TransactionState(
            token=event.transaction_token, card_id="c", account_id="cardholder", asset="USD")
        states[event.transaction_token] = _apply_event(ledger, state, event)
    for state in states.values():  # what is still held is what the facts say should be
        assert state.hold_amount == (desired_hold(state) if state.hold_open else 0), state
    return ledger.counters, expected


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10**9), order_seed=st.integers(0, 10**9))
def test_any_delivery_order_ends_in_the_expected_balances(seed: int, order_seed: int) -> None:
    counters, expected = _run(seed, order_seed)
    want = {account: list(value) for account, value in expected.accounts.items() if any(value)}
    got = {account: value for account, value in counters.items() if any(value)}
    assert got == want


def test_a_late_authorization_after_its_clearing_holds_nothing() -> None:
    ledger = MiniLedger()
    created = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    state = TransactionState(token="t", card_id="c", account_id="cardholder", asset="USD")
    clearing = CardEvent(token="e2", type=EventType.CLEARING, transaction_token="t", card_token="k",
                         created=created + dt.timedelta(seconds=5), currency="USD", amount=700, final=True)
    authorization = CardEvent(token="e1", type=EventType.AUTHORIZATION, transaction_token="t", card_token="k",
                              created=created, currency="USD", amount=700, status="APPROVED")
    state = _apply_event(ledger, state, clearing)
    state = _apply_event(ledger, state, authorization)
    assert ledger.counters["cardholder"] == [0, 700, 0, 0]
    assert not state.hold_attempted and not state.hold_open
