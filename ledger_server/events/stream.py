"""WatchEvents: the backlog from the database, then live events from the feed, in sequence order.

A stream keeps one position, `after`. It never reads past the feed's safe watermark, so everything
it sends is final and in order, and a consumer resuming with the last sequence it received gets
exactly the events after it. Behind the feed's memory it pages through the outbox (primary key
range scans, filters in SQL); within it, it serves from memory with the filters in Python.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from psycopg_pool import ConnectionPool

from ledger.v1 import events_pb2
from ledger_server import queries
from ledger_server import validation as v
from ledger_server.access.interceptor import current_principal
from ledger_server.access.tenancy import TenantGuard
from ledger_server.errors import LedgerError, invalid, transient
from ledger_server.events.event_types import KNOWN_EVENT_TYPES
from ledger_server.events.feed import OutboxFeed, OutboxRow
from ledger_server.events.metrics import EventsMetrics

Q = queries.load("events")

PAGE_EVENTS = 500
SCAN_WINDOW_SEQUENCES = 50_000  # bounds the rows one filtered catch-up query may skip
ACCOUNT_FILTERS_MAX = 100
LIVENESS_CHECK_S = 1.0


@dataclass(frozen=True)
class WatchFilter:
    after: int
    event_types: frozenset[int]
    account_ids: frozenset[uuid.UUID]

    def matches(self, row: OutboxRow, account_ids: list[str]) -> bool:
        if self.event_types and row.event_type not in self.event_types:
            return False
        return not self.account_ids or any(uuid.UUID(a) in self.account_ids for a in account_ids)

    def sql_params(self) -> dict[str, Any]:
        return {"event_types": sorted(self.event_types), "account_ids": sorted(self.account_ids)}


def watch_filter(request: events_pb2.WatchEventsRequest) -> WatchFilter:
    """Validate a WatchEventsRequest: INVALID_ARGUMENT before anything is streamed."""
    types = set()
    for value in request.event_types:
        if value not in KNOWN_EVENT_TYPES:
            raise invalid("INVALID_EVENT_TYPE", f"unknown event type {value}", field="event_types")
        types.add(int(value))
    if len(request.account_ids) > ACCOUNT_FILTERS_MAX:
        raise invalid("INVALID_ID", f"at most {ACCOUNT_FILTERS_MAX} account_ids", field="account_ids")
    accounts = {v.identifier(a, "account_ids") for a in request.account_ids}
    return WatchFilter(request.after_sequence, frozenset(types), frozenset(accounts))


class WatchLimiter:
    """Bounds open streams: each holds a server thread for its lifetime."""

    def __init__(self, max_streams: int, metrics: EventsMetrics) -> None:
        assert max_streams > 0
        self._max = max_streams
        self._open = 0
        self._lock = threading.Lock()
        self._metrics = metrics

    def acquire(self) -> None:
        with self._lock:
            if self._open >= self._max:
                raise transient(grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED",
                                f"at most {self._max} WatchEvents streams are open; retry later")
            self._open += 1
            self._metrics.watchers.set(self._open)

    def release(self) -> None:
        with self._lock:
            self._open -= 1
            assert self._open >= 0
            self._metrics.watchers.set(self._open)


class EventStream:
    """The events of one WatchEvents call."""

    def __init__(self, feed: OutboxFeed, pool: ConnectionPool[Any], metrics: EventsMetrics, wanted: WatchFilter,
                 context: grpc.ServicerContext) -> None:
        self._feed = feed
        self._pool = pool
        self._metrics = metrics
        self._wanted = wanted
        self._context = context
        self._after = wanted.after
        context.add_callback(feed.wake_all)  # a cancelled stream stops waiting at once

    def __iter__(self) -> Iterator[events_pb2.LedgerEvent]:
        self._feed.subscribe()
        try:
            yield from self._follow()
        finally:
            self._feed.unsubscribe()

    def _follow(self) -> Iterator[events_pb2.LedgerEvent]:
        if not self._feed.wait_ready(30):
            raise transient(grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", "the event feed is not ready")
        while self._context.is_active():
            if self._feed.stopped:
                raise transient(grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down")
            watermark = self._feed.watermark
            if self._after >= watermark:
                self._feed.wait_beyond(self._after, LIVENESS_CHECK_S, lambda: not self._context.is_active())
                continue
            yield from self._next_page(watermark)

    def _next_page(self, watermark: int) -> Iterator[events_pb2.LedgerEvent]:
        buffered = self._feed.buffered_after(self._after, PAGE_EVENTS)
        if buffered is not None:
            for row in buffered:
                event = _event(row)
                self._after = row.sequence
                if self._wanted.matches(row, list(event.account_ids)):
                    self._metrics.streamed.inc()
                    yield event
            return
        upto = min(watermark, self._after + SCAN_WINDOW_SEQUENCES)
        with self._pool.connection() as conn:
            rows = conn.execute(Q["outbox_after"], {
                "after": self._after, "upto": upto, "limit": PAGE_EVENTS, **self._wanted.sql_params(),
            }).fetchall()
        page = [OutboxRow(int(s), int(t), bytes(p)) for s, t, p in rows]
        for row in page:
            self._after = row.sequence
            self._metrics.streamed.inc()
            yield _event(row)
        if len(page) < PAGE_EVENTS:
            self._after = upto  # the whole window was scanned


def _event(row: OutboxRow) -> events_pb2.LedgerEvent:
    event = events_pb2.LedgerEvent.FromString(row.payload)
    event.sequence = row.sequence
    return event


def check_tenant(tenants: TenantGuard, wanted: WatchFilter) -> None:
    """A tenant-limited caller sees only events of its own accounts, which it must name."""
    tenant = current_principal().tenant
    if tenant is None:
        return
    if not wanted.account_ids:
        raise LedgerError(grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH",
                          "a caller limited to a tenant must name its accounts in account_ids")
    tenants.check_accounts(tenant, wanted.account_ids)


def stream_events(
    feed: OutboxFeed, pool: ConnectionPool[Any], metrics: EventsMetrics, limiter: WatchLimiter,
    tenants: TenantGuard, request: events_pb2.WatchEventsRequest, context: grpc.ServicerContext,
) -> Iterator[events_pb2.LedgerEvent]:
    """The WatchEvents handler body: validate, then stream until the client goes away."""
    try:
        wanted = watch_filter(request)
        check_tenant(tenants, wanted)
        limiter.acquire()
    except LedgerError as error:
        context.abort_with_status(error.to_status())
        return
    try:
        yield from EventStream(feed, pool, metrics, wanted, context)
    except LedgerError as error:
        context.abort_with_status(error.to_status())
    finally:
        limiter.release()
