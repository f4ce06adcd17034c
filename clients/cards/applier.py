"""Applies the webhook inbox to the ledger: one transaction token at a time, events in arrival order.

Per event, in one database transaction holding the transaction's row lock:
1. read the state (creating it on first sight: adopting a hold the real-time path placed, found in the
   ledger by its request id) and the event (a crashed attempt's event first: `card_inflight`);
2. plan it (`lifecycle.plan`), write the intent (`card_inflight`), send the operations to the ledger
   as one atomic `ApplyOperations` batch with request ids `card:{event}:{attempt}[:{item}]`;
   (The gateway's writes here skip the fsync wait: they share the PostgreSQL cluster with the
   ledger, whose synchronous commits flush the WAL in order, so any ledger effect that survives a
   crash implies every earlier write of ours survived too; a write lost with its own crash is
   simply redone, the ledger replaying its effect.)
3. on a business rejection re-plan (hold expired on the ledger's timer -> force post; raise does not
   fit -> keep the hold; capture beyond the balance -> cover the shortfall from the cardholder
   receivable), each re-plan a new attempt with new request ids;
4. store the new state and mark the event applied, remove the intent: COMMIT.
A crash anywhere replays harmlessly: the ledger request ids are deterministic, so a resent batch is
answered from the ledger's stored outcome and money moves once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from ledger_cards import schema
from ledger_cards.lifecycle import PLACED, LifecycleConfig, Plan, hold_request_id, plan
from ledger_cards.model import CardEvent, EventType, ProgramAccounts, TransactionState
from ledger_cards.operations_batcher import OperationsBatcher
from ledger_cards.program import Programs
from ledger_cards.store import CardStore, Q, card_from_row, transaction_from_row, transaction_params
from ledger_client import (
    AdjustPending,
    AsyncLedgerClient,
    BatchResult,
    InsufficientFunds,
    LedgerError,
    NewTransfer,
    NotFound,
    Operation,
    PostPending,
    Reverse,
    TransferState,
    Transient,
    VoidPending,
)
from ledger_client.errors import (
    BatchItemFailed,
    ExceedsReversibleAmount,
    PendingAlreadyPosted,
    PendingAlreadyVoided,
    PendingExpired,
    PendingNotFound,
    TransferNotFound,
)

log = logging.getLogger(__name__)

ATTEMPTS_MAX = 8
SWEEP_INTERVAL_S = 0.5
SWEEP_BATCH = 500
QUEUE_MAX = 20_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
RECLAIM = ""  # _apply_next: the event was applied by another worker meanwhile; nothing done, claim again
HOLD_GONE = (PendingExpired, PendingAlreadyVoided, PendingAlreadyPosted, PendingNotFound)


@dataclass(frozen=True)
class Flags:
    """What earlier attempts of this event learnt from the ledger (see lifecycle.plan)."""

    hold_gone: bool = False
    no_raise: bool = False
    no_reverse: bool = False
    hold_refused: bool = False
    advance: int = 0  # a shortfall covered from the cardholder receivable, first in the batch

    def to_json(self) -> dict[str, Any]:
        return {"hold_gone": self.hold_gone, "no_raise": self.no_raise, "no_reverse": self.no_reverse,
                "hold_refused": self.hold_refused, "advance": self.advance}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Flags:
        return cls(bool(data.get("hold_gone")), bool(data.get("no_raise")), bool(data.get("no_reverse")),
                   bool(data.get("hold_refused")), int(data.get("advance", 0)))


class PermanentRejectionError(Exception):
    """The ledger refused an event's effect for a reason no re-plan fixes: a person must look."""


class EventApplier:
    def __init__(
        self, store: CardStore, ledger: AsyncLedgerClient, programs: Programs, config: LifecycleConfig,
        workers: int = 16,
    ) -> None:
        assert 1 <= workers <= 40, workers  # each holds a connection of the store's fast pool
        self._store = store
        self._ledger = ledger
        self._programs = programs
        self._config = config
        self._workers = workers
        self._queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_MAX)
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.applied = 0
        self._operations = OperationsBatcher(ledger)
        self.seconds = {"event": 0.0, "ledger": 0.0, "intent": 0.0}  # totals, for /healthz

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._sweeper()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def notify(self, transaction_tokens: list[str]) -> None:
        """Newly stored events: apply soon. A full queue drops the hint; the sweeper finds them."""
        for token in dict.fromkeys(transaction_tokens):
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(token)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                if self._queue.qsize() < QUEUE_MAX // 2:
                    self.notify(await self._store.due_transactions(SWEEP_BATCH))
            except (psycopg.Error, OSError) as error:
                log.warning("inbox sweep failed: %s", error)

    async def _worker(self) -> None:
        while True:
            token = await self._queue.get()
            if token in self._busy:
                self._again.add(token)
                continue
            self._busy.add(token)
            try:
                while True:
                    self._again.discard(token)
                    await self.apply_transaction(token)
                    if token not in self._again:
                        break
            except Exception:
                log.exception("applying transaction %s failed", token)
            finally:
                self._busy.discard(token)

    # -- one transaction --------------------------------------------------------------------------

    async def apply_transaction(self, token: str) -> int:
        """Apply every stored, unapplied event of the transaction; returns how many were applied."""
        count = 0
        # Two round trips per event: "BEGIN; claim" and "finish; COMMIT" (client-side binding lets a
        # statement travel with BEGIN or COMMIT). No fsync wait: see the module docstring.
        async with self._store.fast_pool.connection() as conn:
            cursor = psycopg.AsyncClientCursor(conn)
            while True:
                began = time.perf_counter()
                try:
                    event_token = await self._apply_next(conn, cursor, token)
                    self.seconds["event"] += time.perf_counter() - began
                except Exception as error:  # transient (ledger, database) or a bug: retried later, backing off
                    with contextlib.suppress(psycopg.Error):
                        await conn.execute("ROLLBACK")
                    if isinstance(error, Transient | psycopg.OperationalError | OSError):
                        log.warning("transaction %s: transient failure (%s); retried later", token, error)
                    else:
                        log.exception("transaction %s: applying failed; retried later", token)
                    failed = await self._next_event_token(token)
                    if failed is not None:
                        await self._store.record_failure(failed, str(error))
                    return count
                if event_token is None:
                    await conn.execute("ROLLBACK")  # ends the claim: nothing to apply, the lock goes
                    return count
                if event_token == RECLAIM:
                    continue
                count += 1
                self.applied += 1

    async def _next_event_token(self, token: str) -> str | None:
        with contextlib.suppress(psycopg.Error):
            async with self._store.pool.connection() as conn:
                row = await (await conn.execute(Q["next_event"], {"token": token})).fetchone()
                return None if row is None else str(row[0])
        return None

    async def _apply_next(
        self, conn: AsyncConnection[Any], cursor: psycopg.AsyncClientCursor[Any], token: str
    ) -> str | None:
        """Apply the next event of the transaction and commit; None (transaction still open) if none."""
        await cursor.execute("BEGIN; " + Q["lock_transaction_row"] + " " + Q["claim_next"], {"token": token})
        cursor.nextset()
        cursor.nextset()
        claimed = await cursor.fetchone()
        assert claimed is not None
        row = claimed[:17] if claimed[0] is not None else None
        inflight = claimed[17:20] if claimed[17] is not None else None
        event_row = claimed[20:22] if claimed[20] is not None else None
        flags = Flags()
        attempt = 1
        if inflight is not None:
            event_row = await (await conn.execute(Q["event_by_token"], {"event_token": inflight[0]})).fetchone()
            assert event_row is not None, inflight
            if event_row[2] is not None:  # already applied: the intent outlived its commit
                await cursor.execute(_and_commit(Q["delete_inflight"]), {"token": token})
                return str(inflight[0])
            attempt, flags = int(inflight[1]), Flags.from_json(inflight[2])
        elif event_row is None:
            return None
        event = schema.event(event_row[1])
        if row is None:
            state = await self._first_state(conn, event)
            if state is None:
                await self._mark(cursor, event, {"error": "CARD_NOT_FOUND"})
                return event.token
            await conn.execute(Q["insert_transaction"], transaction_params(state))
            row = await (await conn.execute(Q["lock_transaction"], {"token": token})).fetchone()
            assert row is not None
            if await (await conn.execute(Q["event_unapplied"], {"event_token": event.token})).fetchone() is None:
                await conn.execute("ROLLBACK")  # another worker applied it meanwhile: claim again
                return RECLAIM
        state = transaction_from_row(row)
        if event.currency != state.asset:
            await self._mark(cursor, event, {"error": "CURRENCY_MISMATCH"})
            return event.token
        try:
            new_state, outcome = await self._apply(state, event, attempt, flags)
        except PermanentRejectionError as rejection:
            log.error("event %s: %s", event.token, rejection)
            new_state, outcome = replace(state, review=f"ledger_rejected: {rejection}"[:200]), {"error": str(rejection)}
        params = {**transaction_params(new_state), "event_token": event.token, "outcome": Jsonb(outcome)}
        await cursor.execute(_and_commit(Q["finish_event"]), params)
        return event.token

    async def _mark(self, cursor: psycopg.AsyncClientCursor[Any], event: CardEvent, outcome: dict[str, Any]) -> None:
        """Mark an event applied without a ledger effect (it cannot have one) and commit."""
        await cursor.execute(_and_commit(Q["mark_applied"]), {"event_token": event.token, "outcome": Jsonb(outcome)})

    async def _first_state(self, conn: AsyncConnection[Any], event: CardEvent) -> TransactionState | None:
        """A transaction seen for the first time. If the real-time path placed a hold but its record
        was lost, the ledger has it under the deterministic request id: adopt it, never hold twice."""
        card_row = await (await conn.execute(Q["card_by_token"], {"token": event.card_token})).fetchone()
        if card_row is None:
            return None
        card = card_from_row(card_row)
        state = TransactionState(token=event.transaction_token, card_id=card.id, account_id=card.account_id,
                                 asset=card.asset)
        if event.type in (EventType.RETURN, EventType.RETURN_REVERSAL):
            return state
        for request_id in (hold_request_id(state.token), hold_request_id(state.token) + ":partial"):
            try:
                hold = await self._ledger.get_transfer(request_id=request_id)
            except NotFound:
                continue
            pending = hold.state == TransferState.PENDING
            return replace(state, hold_attempted=True, hold_id=hold.id, hold_open=pending,
                           hold_amount=hold.amount if pending else 0, auth_total=hold.amount, auth_key=(EPOCH, ""))
        return state

    # -- one event --------------------------------------------------------------------------------

    async def _apply(
        self, state: TransactionState, event: CardEvent, attempt: int, flags: Flags
    ) -> tuple[TransactionState, dict[str, Any]]:
        accounts = await self._programs.accounts(state.asset)
        for _ in range(ATTEMPTS_MAX):
            current = self._plan(state, event, accounts, flags)
            operations = _with_advance(current.operations, state, accounts, flags.advance, event)
            if not operations:
                return current.state, {"note": current.note, "transfers": []}
            batch_id = f"card:{event.token}:{attempt}"
            began = time.perf_counter()
            await self._store.write_inflight(state.token, event.token, attempt, flags.to_json())
            sent = time.perf_counter()
            result = await self._operations.apply(_with_request_ids(operations, batch_id), batch_id)
            self.seconds["intent"] += sent - began
            self.seconds["ledger"] += time.perf_counter() - sent
            if result.ok:
                return _committed(current, result, 1 if flags.advance else 0), {
                    "note": current.note, "batch": batch_id, "transfers": [t.id for t in result.transfers],
                }
            flags = await self._learn(state, operations, result, flags)
            attempt += 1
        raise PermanentRejectionError(f"no plan fitted the ledger after {ATTEMPTS_MAX} attempts")

    def _plan(self, state: TransactionState, event: CardEvent, accounts: ProgramAccounts, flags: Flags) -> Plan:
        current = plan(state, event, accounts, self._config, hold_gone=flags.hold_gone, no_raise=flags.no_raise,
                       no_reverse=flags.no_reverse)
        if flags.hold_refused and current.hold_op is not None:
            refused = replace(current.state, hold_open=False, hold_amount=0, hold_id=None, review="hold_refused")
            return Plan((), refused, note="hold refused by the ledger (the processor approved without us)")
        return current

    async def _learn(
        self, state: TransactionState, operations: list[Operation], result: BatchResult, flags: Flags
    ) -> Flags:
        """Why the atomic batch failed, as the flags of the next plan."""
        failed = [(i, r.error) for i, r in enumerate(result.results)
                  if r.error is not None and not isinstance(r.error, BatchItemFailed)]
        assert failed, "an atomic batch failed without a failing item"
        index, error = failed[0]
        operation = operations[index]
        if isinstance(error, HOLD_GONE) and isinstance(operation, PostPending | AdjustPending | VoidPending):
            return replace(flags, hold_gone=True)
        if isinstance(error, InsufficientFunds):
            if isinstance(operation, AdjustPending):
                return replace(flags, no_raise=True)
            if isinstance(operation, NewTransfer) and operation.pending:
                return replace(flags, hold_refused=True)
            return replace(flags, advance=await self._shortfall(state, operations, flags.advance))
        if isinstance(error, ExceedsReversibleAmount | TransferNotFound) and isinstance(operation, Reverse):
            return replace(flags, no_reverse=True)
        assert isinstance(error, LedgerError)
        raise PermanentRejectionError(f"{error.reason}: {error}")

    async def _shortfall(self, state: TransactionState, operations: list[Operation], advanced: int) -> int:
        """How much the cardholder's balance misses for this batch's debits (a capture always posts)."""
        needed = 0
        released = 0
        for operation in operations:
            if isinstance(operation, NewTransfer) and not operation.pending and \
                    operation.debit_account_id == state.account_id:
                needed += int(operation.amount)
            elif isinstance(operation, Reverse):
                needed += int(operation.amount or 0)
            elif isinstance(operation, PostPending):
                released += state.hold_amount - int(operation.amount or state.hold_amount)
            elif isinstance(operation, AdjustPending):
                released += state.hold_amount - int(operation.amount)
            elif isinstance(operation, VoidPending):
                released += state.hold_amount
        balance = await self._ledger.get_account_balance(account_id=state.account_id)
        # The failed batch committed nothing (its advance included): the balance is what there is.
        return max(advanced, needed - balance.available_balance - released)


def _and_commit(sql: str) -> str:
    return sql.rstrip().rstrip(";") + "; COMMIT"


def _with_advance(
    operations: tuple[Operation, ...], state: TransactionState, accounts: ProgramAccounts, advance: int,
    event: CardEvent,
) -> list[Operation]:
    if advance <= 0 or not operations:
        return list(operations)
    cover = NewTransfer(
        debit_account_id=accounts.cardholder_receivable, credit_account_id=state.account_id, amount=advance,
        asset=state.asset, metadata={"card_event": event.token, "card_transaction": state.token,
                                     "card_part": "shortfall"},
    )
    return [cover, *operations]


def _with_request_ids(operations: list[Operation], batch_id: str) -> list[Operation]:
    """Deterministic item request ids; a hold keeps its own (`card:auth:{token}`)."""
    return [op if op.request_id is not None else replace(op, request_id=f"{batch_id}:{i}")
            for i, op in enumerate(operations)]


def _committed(current: Plan, result: BatchResult, offset: int) -> TransactionState:
    state = current.state
    if current.hold_op is not None:
        hold = result.results[current.hold_op + offset].unwrap()
        assert state.hold_id == PLACED, state
        state = replace(state, hold_id=hold.id)
    if current.credit_op is not None:
        credit = result.results[current.credit_op + offset].unwrap()
        state = replace(state, credit_transfer_id=credit.id)
    if state.review is None and offset:
        state = replace(state, review="cardholder_shortfall_covered")
    return state
