"""The gateway's own tables (0006_cards.sql) on its psycopg pool: rows <-> model objects.

Only card state lives here; every ledger effect goes through the ledger API (the SDK).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncRawCursor
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ledger_cards import queries
from ledger_cards.model import Card, CardEvent, CardState, TransactionState
from ledger_server.queries import positional

Q = queries.load("cards")
# The real-time path's two statements, with `$n` placeholders for psycopg's RawCursor: no query
# conversion per call (measured alone: 85-101 -> 68-78 µs of CPU per statement).
AUTHORIZATION_CONTEXTS, AUTHORIZATION_CONTEXTS_PARAMS = positional(Q["authorization_contexts"])
RECORD_AUTHORIZATIONS, RECORD_AUTHORIZATIONS_PARAMS = positional(Q["record_authorizations"])
assert AUTHORIZATION_CONTEXTS_PARAMS == ("lookups", "ttl_s") and RECORD_AUTHORIZATIONS_PARAMS == ("rows", "ttl_s")
BATCH_ROWS_MAX = 1_000  # rows per batched statement of the real-time path
RECORD_ATTEMPTS = 3
REALTIME_LOCK_TIMEOUT_MS = 50
SEEN_DELETE_BATCH = 10_000


def _first_occurrences(keys: Sequence[str], chosen: set[str]) -> list[bool]:
    """For each key: whether it is in `chosen` and this is its first time in `keys` (a batch's copies
    of one key after the first are replays or duplicates)."""
    seen: set[str] = set()
    answers = []
    for key in keys:
        answers.append(key in chosen and key not in seen)
        seen.add(key)
    return answers


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def card_from_row(row: Sequence[Any]) -> Card:
    return Card(
        id=row[0], token=row[1], account_id=row[2], asset=row[3], state=CardState(row[4]),
        daily_limit=_int(row[5]), monthly_limit=_int(row[6]), blocked_mccs=tuple(row[7]), tenant=row[8],
        metadata=dict(row[9] or {}), version=row[10],
    )


def transaction_from_row(row: Sequence[Any]) -> TransactionState:
    auth_key = (row[5], row[6]) if row[5] is not None else None
    return TransactionState(
        token=row[0], card_id=row[1], account_id=row[2], asset=row[3], auth_total=_int(row[4]), auth_key=auth_key,
        closed_reason=row[7], hold_attempted=row[8], hold_id=row[9], hold_amount=int(row[10]), hold_open=row[11],
        cleared_total=int(row[12]), returned_total=int(row[13]), return_reversed=int(row[14]),
        credit_transfer_id=row[15], review=row[16],
    )


def transaction_params(state: TransactionState) -> dict[str, Any]:
    return {
        "token": state.token, "card_id": state.card_id, "account_id": state.account_id, "asset": state.asset,
        "auth_total": state.auth_total, "auth_created": state.auth_key[0] if state.auth_key else None,
        "auth_event": state.auth_key[1] if state.auth_key else None, "closed_reason": state.closed_reason,
        "hold_attempted": state.hold_attempted, "hold_id": state.hold_id, "hold_amount": state.hold_amount,
        "hold_open": state.hold_open, "cleared_total": state.cleared_total, "returned_total": state.returned_total,
        "return_reversed": state.return_reversed, "credit_transfer_id": state.credit_transfer_id,
        "review": state.review,
    }


def payload_hash(raw: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).digest()


@dataclass(frozen=True)
class AuthorizationLookup:
    """One real-time authorization's question to the database: its card, its token and the key of
    its signed message (message id and signature timestamp, see card_seen_messages)."""

    card_token: str
    token: str
    message_key: str


@dataclass(frozen=True)
class AuthorizationContext:
    """What the database knows of one authorization: its card (None: unknown) and any earlier
    answer to its token. `first_time` is False when its signed message was received before."""

    first_time: bool
    card: Card | None
    earlier_result: str | None
    earlier_amount: int | None
    earlier_reason: str | None
    earlier_hold_id: str | None


@dataclass(frozen=True)
class AuthorizationRecord:
    """One real-time answer and the first state of its transaction. `message_key` and `card_version`
    are given when the answer was decided with a cached card: it is recorded only if its signed
    message is new and the card unchanged (see record_authorizations)."""

    token: str
    card_id: str
    result: str
    requested: int
    approved: int
    reason: str | None
    hold_id: str | None
    timed_out: bool
    transaction: TransactionState
    message_key: str | None = None
    card_version: int | None = None


@dataclass(frozen=True)
class EarlierAnswer:
    result: str
    approved: int
    reason: str | None
    hold_id: str | None


@dataclass(frozen=True)
class RecordResult:
    """What recording one answer did. Nothing is recorded for a replay (its signed message was
    received before) or a stale decision (the card changed since: decide again)."""

    replayed: bool
    stale: bool
    answered: bool  # recorded now: this is the token's answer
    created: bool  # its transaction row is new (else a webhook or an earlier answer made it)
    earlier: EarlierAnswer | None  # the answer given to the token before, when there was one


def _record_row(record: AuthorizationRecord) -> dict[str, Any]:
    """One row of `record_authorizations` as JSON: amounts as exact integers, times in ISO 8601."""
    state = record.transaction
    return {
        "token": record.token, "card_id": record.card_id, "result": record.result,
        "requested_amount": record.requested, "approved_amount": record.approved, "decline_reason": record.reason,
        "hold_id": record.hold_id, "timed_out": record.timed_out, "account_id": state.account_id,
        "asset": state.asset, "auth_total": state.auth_total,
        "auth_created": state.auth_key[0].isoformat() if state.auth_key else None,
        "auth_event": state.auth_key[1] if state.auth_key else None, "closed_reason": state.closed_reason,
        "hold_attempted": state.hold_attempted, "hold_amount": state.hold_amount, "hold_open": state.hold_open,
        "message_key": record.message_key, "card_version": record.card_version,
    }


@dataclass(frozen=True)
class AcceptedEvents:
    new: list[tuple[str, str]]  # (event token, transaction token) stored now
    duplicates: int
    conflicts: list[str]  # duplicates whose payload differs from the stored one (kept: the first wins)


class CardStore:
    def __init__(self, database_url: str, workers: int = 16, seen_ttl_s: int = 660) -> None:
        """Connections: at most 12 synchronous, workers + 8 without fsync wait, workers // 2 + 4 for
        intents, 4 for the real-time records (PostgreSQL's max_connections is shared with the ledger
        and everyone else)."""
        assert 1 <= workers <= 40, workers
        assert 60 <= seen_ttl_s <= 86_400, seen_ttl_s
        self._seen_ttl_s = seen_ttl_s  # how long a signed message's key is kept (card_seen_messages)
        # Every statement here is a key lookup or a keyed write. psycopg prepares a statement after a
        # few runs and PostgreSQL may then cache a generic plan built while a table was nearly empty:
        # a sequential scan, run on every later call as the table grows (the ledger's writer had that
        # trap, benchmarks/README.md). Sequential scans off means: an index wherever one applies.
        planning = "-c enable_seqscan=off"
        self.pool = AsyncConnectionPool(
            database_url, min_size=2, max_size=12, open=False, timeout=10,
            kwargs={"autocommit": True, "options": planning},
        )
        # Inbox writes must be durable before the 2xx; writes the ledger's own commits make durable
        # (WAL is flushed in order: see docs/cards.md) use a connection without synchronous commit.
        fast = {"autocommit": True, "options": f"{planning} -c synchronous_commit=off"}
        self.fast_pool = AsyncConnectionPool(database_url, min_size=2, max_size=workers + 8, open=False,
                                             timeout=10, kwargs=fast)
        # Intents are written while the same worker holds a fast_pool connection: their own pool, so
        # the two can never wait on each other.
        self.intent_pool = AsyncConnectionPool(database_url, min_size=1, max_size=workers // 2 + 4, open=False,
                                               timeout=10, kwargs=fast)
        # The real-time path's batched records (record_authorizations): a lock wait past
        # REALTIME_LOCK_TIMEOUT_MS sends the batch's rows alone instead.
        realtime = {**fast, "options": f"{fast['options']} -c lock_timeout={REALTIME_LOCK_TIMEOUT_MS}"}
        self.realtime_pool = AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False, timeout=10,
                                                 kwargs=realtime)
        self._alone: set[asyncio.Future[RecordResult]] = set()  # records sent alone, still running

    async def open(self) -> None:
        await self.pool.open(wait=True)
        await self.fast_pool.open(wait=True)
        await self.intent_pool.open(wait=True)
        await self.realtime_pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()
        await self.fast_pool.close()
        await self.intent_pool.close()
        await self.realtime_pool.close()

    # -- program accounts and cards ---------------------------------------------------------------

    async def program_accounts(self, asset: str) -> dict[str, str]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q["program_accounts"], {"asset": asset})).fetchall()
        return {row[0]: row[1] for row in rows}

    async def insert_program_account(self, asset: str, role: str, account_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(Q["insert_program_account"], {"asset": asset, "role": role, "account_id": account_id})

    async def insert_card(
        self, token: str, account_id: str, asset: str, tenant: str | None, daily_limit: int | None,
        monthly_limit: int | None, blocked_mccs: Sequence[str], metadata: dict[str, str],
    ) -> tuple[Card, bool]:
        """The card with `token`: created now (True) or found (False)."""
        params = {
            "id": str(uuid.uuid4()), "token": token, "account_id": account_id, "asset": asset, "tenant": tenant,
            "daily_limit": daily_limit, "monthly_limit": monthly_limit, "blocked_mccs": list(blocked_mccs),
            "metadata": Jsonb(metadata),
        }
        async with self.pool.connection() as conn:
            created = await (await conn.execute(Q["insert_card"], params)).fetchone()
        card = await self.card_by_token(token)
        assert card is not None
        return card, created is not None

    async def card_by_token(self, token: str) -> Card | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["card_by_token"], {"token": token})).fetchone()
        return None if row is None else card_from_row(row)

    async def card_by_id(self, card_id: str) -> Card | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["card_by_id"], {"id": card_id})).fetchone()
        return None if row is None else card_from_row(row)

    async def set_card_state(self, card_id: str, state: CardState) -> bool:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["set_card_state"], {"id": card_id, "state": int(state)})).fetchone()
        return row is not None

    async def set_card_controls(
        self, card_id: str, daily_limit: int | None, monthly_limit: int | None, blocked_mccs: Sequence[str]
    ) -> bool:
        params = {"id": card_id, "daily_limit": daily_limit, "monthly_limit": monthly_limit,
                  "blocked_mccs": list(blocked_mccs)}
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["set_card_controls"], params)).fetchone()
        return row is not None

    # -- real-time authorizations -----------------------------------------------------------------

    async def authorization_contexts(self, lookups: Sequence[AuthorizationLookup]) -> list[AuthorizationContext]:
        """Each authorization's context, its message marked as received, in one statement for the
        whole list (see ledger_cards/coalescer.py). A message key repeated within the list is a
        replay from its second time on. Its only write is to an unlogged table: no fsync wait."""
        assert 0 < len(lookups) <= BATCH_ROWS_MAX, len(lookups)
        first: dict[str, int] = {}
        for index, lookup in enumerate(lookups):
            first.setdefault(lookup.message_key, index)
        sent = [lookups[index] for index in first.values()]
        params = (json.dumps([(x.card_token, x.token, x.message_key) for x in sent], separators=(",", ":")),
                  self._seen_ttl_s)
        async with self.fast_pool.connection() as conn:
            cursor = AsyncRawCursor(conn)
            rows = await (await cursor.execute(AUTHORIZATION_CONTEXTS, params, prepare=True)).fetchall()
        assert len(rows) == len(sent), (len(rows), len(sent))
        by_key: dict[str, AuthorizationContext] = {}
        for row in rows:
            card = card_from_row(row[2:13]) if row[2] is not None else None
            by_key[sent[row[0] - 1].message_key] = AuthorizationContext(
                row[1], card, row[13], _int(row[14]), row[15], row[16])
        return [by_key[x.message_key] if first[x.message_key] == index
                else replace(by_key[x.message_key], first_time=False) for index, x in enumerate(lookups)]

    async def mark_seen_messages(self, keys: Sequence[str]) -> list[bool]:
        """For each signed message key: True if received for the first time now (see
        card_seen_messages); a key repeated within the list is a replay from its second time on."""
        assert 0 < len(keys) <= BATCH_ROWS_MAX, len(keys)
        distinct = sorted(set(keys))
        async with self.fast_pool.connection() as conn:
            rows = await (await conn.execute(Q["mark_seen_messages"],
                                             {"keys": distinct, "ttl_s": self._seen_ttl_s})).fetchall()
        return _first_occurrences(keys, {row[0] for row in rows})

    async def delete_expired_seen_messages(self) -> int:
        """Rows of card_seen_messages past their window, deleted a bounded batch at a time."""
        deleted = 0
        while True:
            async with self.pool.connection() as conn:
                cursor = await conn.execute(Q["delete_expired_seen_messages"], {"limit": SEEN_DELETE_BATCH})
            deleted += cursor.rowcount
            if cursor.rowcount < SEEN_DELETE_BATCH:
                return deleted

    async def record_authorizations(
        self, records: Sequence[AuthorizationRecord]
    ) -> list[RecordResult | asyncio.Future[RecordResult]]:
        """Store each answer and its transaction's first state (see RecordResult). Written without
        waiting for fsync: see docs/cards.md.

        One statement for the list, with each token and each message key at most once; a later copy
        of either (a retry or a replay sent at the same moment) goes in a statement of its own after
        it, so the database tells what the copy is. A batch must not wait behind one row: a webhook
        worker that is creating the same transaction holds its row until its ledger calls return,
        and every answer of the batch would wait with it. So the batch runs with a short lock
        timeout, and past it each row goes alone, its result a future (see ledger_cards/coalescer.py):
        only the answer that shares the row waits for it, as it must."""
        assert 0 < len(records) <= BATCH_ROWS_MAX, len(records)
        first: dict[str, AuthorizationRecord] = {}
        keys: set[str] = set()
        copies: set[int] = set()
        for index, record in enumerate(records):
            if record.token in first or record.message_key in keys:
                copies.add(index)
                continue
            first[record.token] = record
            if record.message_key is not None:
                keys.add(record.message_key)
        try:
            recorded = await self._record(self.realtime_pool, list(first.values()))
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            return [self._record_alone(record) for record in records]
        return [self._record_alone(record) if index in copies else recorded[record.token]
                for index, record in enumerate(records)]

    def _record_alone(self, row: AuthorizationRecord) -> asyncio.Future[RecordResult]:
        """One row in its own statement, without the lock timeout: it waits for the row if it must."""

        async def record() -> RecordResult:
            return (await self._record(self.fast_pool, [row]))[row.token]

        task = asyncio.ensure_future(record())
        self._alone.add(task)
        task.add_done_callback(self._alone.discard)
        return task

    async def _record(self, pool: AsyncConnectionPool, rows: list[AuthorizationRecord]) -> dict[str, RecordResult]:
        """What recording did to each of `rows` (distinct tokens), by token."""
        payload = json.dumps([_record_row(record) for record in rows], separators=(",", ":"))
        fetched: list[Any] = []
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                async with pool.connection() as conn:
                    cursor = AsyncRawCursor(conn)
                    fetched = await (await cursor.execute(
                        RECORD_AUTHORIZATIONS, (payload, self._seen_ttl_s), prepare=True)).fetchall()
                break
            except psycopg.errors.DeadlockDetected:  # the same tokens recorded by another gateway at once
                if attempt == RECORD_ATTEMPTS or pool is self.realtime_pool:
                    raise
        assert len(fetched) == len(rows), (len(fetched), len(rows))
        return {row[0]: RecordResult(row[1], row[2], row[3], row[4],
                                     None if row[5] is None else EarlierAnswer(row[5], int(row[6]), row[7], row[8]))
                for row in fetched}

    async def transaction_hold(self, token: str) -> str | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["transaction_hold"], {"token": token})).fetchone()
        return None if row is None else row[0]

    async def spent_since(self, card_id: str, day_start: dt.datetime, month_start: dt.datetime) -> tuple[int, int]:
        """(day, month) spend: recorded approvals plus reservations still in flight."""
        params = {"card_id": card_id, "day_start": day_start, "month_start": month_start}
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["spent_since"], params)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def reserve_spend(
        self, card_id: str, token: str, day_start: dt.datetime, month_start: dt.datetime,
        allowed: Callable[[int, int], int],
    ) -> int:
        """Under the card's lock: read the spend, let `allowed(day, month)` decide, and reserve what it
        allows before the lock goes, so a concurrent decision on the same card counts it. A token
        that reserved before gets its reservation again (copies of one authorization hold once)."""
        params = {"card_id": card_id, "day_start": day_start, "month_start": month_start}
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(Q["lock_card_spend"], params)
            earlier = await (await conn.execute(Q["spend_reservation_of"], {"token": token})).fetchone()
            if earlier is not None:
                return int(earlier[0])
            row = await (await conn.execute(Q["spent_since"], params)).fetchone()
            assert row is not None
            amount = allowed(int(row[0]), int(row[1]))
            if amount > 0:
                reservation = {"token": token, "card_id": card_id, "amount": amount}
                await conn.execute(Q["insert_spend_reservation"], reservation)
            await conn.execute(Q["delete_old_spend_reservations"], params)
        return amount

    async def accept_events(self, events: Sequence[tuple[CardEvent, dict[str, Any]]]) -> AcceptedEvents:
        """Store a delivery's events durably (synchronous commit) before it is acknowledged."""
        hashes = [payload_hash(raw) for _, raw in events]
        params = {
            "event_tokens": [e.token for e, _ in events],
            "transaction_tokens": [e.transaction_token for e, _ in events],
            "event_types": [e.type.value for e, _ in events],
            "payloads": [Jsonb(raw) for _, raw in events],
            "payload_hashes": hashes,
        }
        async with self.pool.connection() as conn:
            new = [(r[0], r[1]) for r in await (await conn.execute(Q["insert_events"], params)).fetchall()]
            conflicts: list[str] = []
            if len(new) < len(events):
                fresh = {token for token, _ in new}
                stored: dict[str, bytes] = dict(await (await conn.execute(
                    Q["event_hashes"], {"event_tokens": [e.token for e, _ in events if e.token not in fresh]}
                )).fetchall())
                conflicts = [e.token for (e, _), h in zip(events, hashes, strict=True)
                             if e.token in stored and bytes(stored[e.token]) != h]
        return AcceptedEvents(new, len(events) - len(new), conflicts)

    async def due_transactions(self, limit: int) -> list[str]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(Q["due_transactions"], {"limit": limit})).fetchall()
        return [row[0] for row in rows]

    async def unapplied_count(self) -> int:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["unapplied_count"])).fetchone()
        assert row is not None
        return int(row[0])

    async def write_inflight(self, token: str, event_token: str, attempt: int, request: dict[str, Any]) -> None:
        params = {"token": token, "event_token": event_token, "attempt": attempt, "request": Jsonb(request)}
        async with self.intent_pool.connection() as conn:
            await conn.execute(Q["write_inflight"], params)

    async def record_failure(self, event_token: str, error: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(Q["record_failure"], {"event_token": event_token, "error": error[:2000]})


async def fetch_one(conn: AsyncConnection[Any], name: str, params: dict[str, Any]) -> Any:
    return await (await conn.execute(Q[name], params)).fetchone()
