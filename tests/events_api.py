"""Helpers for tests of WatchEvents and webhooks: stubs, event producers, outbox reads, a dispatcher."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import psycopg
from prometheus_client import CollectorRegistry

from ledger.v1 import events_pb2, events_service_pb2_grpc, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.webhooks.config import DispatcherConfig
from ledger_server.events.webhooks.dispatcher import Dispatcher
from ledger_server.events.webhooks.retry_schedule import RetrySchedule
from ledger_server.events.webhooks.url_policy import UrlPolicy
from tests.ledger_api import new_account, new_asset, rid, transfer

DEV_POLICY = UrlPolicy(allow_loopback=True, allow_http=True)


def events_stub(channel: grpc.Channel) -> events_service_pb2_grpc.LedgerEventsStub:
    return events_service_pb2_grpc.LedgerEventsStub(channel)


def outbox(database_url: str, after: int = 0) -> list[tuple[int, int]]:
    """(sequence, event_type) of every committed event after `after`, in order."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT sequence, event_type FROM outbox WHERE sequence > %s ORDER BY sequence",
                            (after,)).fetchall()
    return [(int(s), int(t)) for s, t in rows]


def max_sequence(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT coalesce(max(sequence), 0) FROM outbox").fetchone()
    assert row is not None
    return int(row[0])


class RetryingStub:
    """Retries ABORTED (contention) with the same request, as clients are told to: same request id."""

    def __init__(self, stub: ledger_pb2_grpc.LedgerStub) -> None:
        self._stub = stub

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            for attempt in range(10):
                try:
                    return method(request, **kwargs)
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.ABORTED or attempt == 9:
                        raise
                    time.sleep(0.01 * (attempt + 1))
            raise AssertionError("unreachable")

        return call


def produce(stub: ledger_pb2_grpc.LedgerStub, count: int, seed: int = 1) -> None:
    """About `count` events of every ledger kind: accounts, transfers, holds posted / voided, reversals."""
    rng = random.Random(seed)
    stub = RetryingStub(stub)  # type: ignore[assignment]
    asset = new_asset(stub)
    accounts = [new_account(stub, asset).id for _ in range(4)]
    made = 5
    while made < count:
        debit, credit = rng.sample(accounts, 2)
        kind = rng.random()
        if kind < 0.5:
            transfer(stub, debit, credit, rng.randint(1, 1000), asset)
            made += 1
        elif kind < 0.8:
            hold = transfer(stub, debit, credit, rng.randint(1, 1000), asset, pending=True)
            if rng.random() < 0.5:
                stub.PostPendingTransfer(pb.PostPendingTransferRequest(request_id=rid(), pending_id=hold.id))
            else:
                stub.VoidPendingTransfer(pb.VoidPendingTransferRequest(request_id=rid(), pending_id=hold.id))
            made += 2
        else:
            posted = transfer(stub, debit, credit, rng.randint(2, 1000), asset)
            stub.ReverseTransfer(pb.ReverseTransferRequest(request_id=rid(), transfer_id=posted.id))
            made += 2


def read_stream(stub: events_service_pb2_grpc.LedgerEventsStub, request: events_pb2.WatchEventsRequest,
                until_sequence: int, timeout_s: float = 30) -> list[events_pb2.LedgerEvent]:
    """Events of a stream up to (and including) `until_sequence`, then cancel."""
    got: list[events_pb2.LedgerEvent] = []
    call = stub.WatchEvents(request, timeout=timeout_s)
    try:
        for event in call:
            got.append(event)
            if event.sequence >= until_sequence:
                break
    finally:
        call.cancel()
    return got


def fast_dispatcher_config(**overrides: Any) -> DispatcherConfig:
    """Compressed schedule, short timeouts, loopback receivers allowed."""
    settings: dict[str, Any] = {
        "schedule": RetrySchedule.parse("0,50ms,100ms", jitter=0.1), "policy": DEV_POLICY,
        "request_timeout_s": 1.0, "poll_interval_s": 0.1, "lease_s": 3.0,
    }
    settings.update(overrides)
    return DispatcherConfig(**settings)


@contextmanager
def running_dispatcher(database_url: str, config: DispatcherConfig) -> Iterator[Dispatcher]:
    dispatcher = Dispatcher(database_url, config, EventsMetrics(CollectorRegistry())).start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop(grace_s=5)


class StreamCollector:
    """A WatchEvents stream read by a background thread."""

    def __init__(self, stub: events_service_pb2_grpc.LedgerEventsStub,
                 request: events_pb2.WatchEventsRequest | None = None) -> None:
        self.events: list[events_pb2.LedgerEvent] = []
        self.arrivals: list[float] = []
        self.error: grpc.RpcError | None = None
        self._call = stub.WatchEvents(request or events_pb2.WatchEventsRequest())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                self.arrivals.append(time.perf_counter())
                self.events.append(event)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(timeout=5)
