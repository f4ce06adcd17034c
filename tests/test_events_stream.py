"""WatchEvents: backlog then live, in global sequence order, resumable, filtered, never past the
safe watermark (a lower sequence still in flight holds later ones back)."""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
import psycopg
import pytest

from ledger.v1 import events_pb2, ledger_pb2_grpc
from ledger_server.server import LedgerServer, ServerConfig
from tests.conftest import open_channel
from tests.events_api import StreamCollector, events_stub, max_sequence, outbox, produce, read_stream
from tests.ledger_api import error_reason, new_account, new_asset, transfer


def _wait(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_backlog_then_live_in_order(stub: ledger_pb2_grpc.LedgerStub, channel: grpc.Channel, database_url: str) -> None:
    produce(stub, 30, seed=2)
    events = events_stub(channel)
    collector = StreamCollector(events)
    try:
        backlog = outbox(database_url)
        _wait(lambda: len(collector.events) >= len(backlog))
        produce(stub, 20, seed=3)
        expected = outbox(database_url)
        _wait(lambda: len(collector.events) >= len(expected))
        time.sleep(0.2)
        assert [(e.sequence, e.type) for e in collector.events] == expected
        kinds = {e.WhichOneof("payload") for e in collector.events}
        assert {"asset", "account", "transfer"} <= kinds
        assert all(e.HasField("occurred_at") for e in collector.events)
    finally:
        collector.close()
    assert collector.error is None


def test_resume_after_sequence_sees_exactly_the_rest(
    stub: ledger_pb2_grpc.LedgerStub, channel: grpc.Channel, database_url: str
) -> None:
    produce(stub, 20, seed=4)
    everything = outbox(database_url)
    middle = everything[len(everything) // 2][0]
    got = read_stream(events_stub(channel), events_pb2.WatchEventsRequest(after_sequence=middle), everything[-1][0])
    assert [(e.sequence, e.type) for e in got] == [x for x in everything if x[0] > middle]


def test_filters_by_type_and_account(
    stub: ledger_pb2_grpc.LedgerStub, channel: grpc.Channel, database_url: str
) -> None:
    asset = new_asset(stub)
    a, b, c = (new_account(stub, asset).id for _ in range(3))
    for _ in range(3):
        transfer(stub, a, b, 5, asset)
        transfer(stub, b, c, 5, asset)
    events = events_stub(channel)
    request = events_pb2.WatchEventsRequest(account_ids=[c], event_types=[events_pb2.TRANSFER_POSTED])
    got: list[events_pb2.LedgerEvent] = []
    call = events.WatchEvents(request)
    try:
        for event in call:
            got.append(event)
            if len(got) == 3:
                break
    finally:
        call.cancel()
    assert all(e.type == events_pb2.TRANSFER_POSTED and c in e.account_ids for e in got)
    assert [e.transfer.credit_account_id for e in got] == [c, c, c]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT sequence FROM outbox WHERE event_type = 3 AND %s = ANY (account_ids) ORDER BY sequence",
            (uuid.UUID(c),),
        ).fetchall()
    expected = [r[0] for r in rows]
    assert [e.sequence for e in got] == expected


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [
        ({"event_types": [99]}, "INVALID_EVENT_TYPE"),
        ({"account_ids": ["not-a-uuid"]}, "INVALID_ID"),
        ({"account_ids": [str(uuid.uuid4()) for _ in range(101)]}, "INVALID_ID"),
    ],
)
def test_bad_requests_are_refused(channel: grpc.Channel, request_fields: dict[str, object], reason: str) -> None:
    call = events_stub(channel).WatchEvents(events_pb2.WatchEventsRequest(**request_fields))  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as raised:
        next(iter(call))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(raised.value) == reason


INSERT_EVENT = (
    "INSERT INTO outbox (event_type, account_ids, payload, created_at) VALUES (1, '{}', %s, now()) RETURNING sequence"
)


def _outbox_payload() -> bytes:
    return events_pb2.LedgerEvent(type=events_pb2.ASSET_CREATED).SerializeToString()


def test_a_lower_sequence_in_flight_holds_later_ones_back(channel: grpc.Channel, database_url: str) -> None:
    """T1 gets its transaction id first, T2 draws the lower sequence, T1 draws the higher one and
    commits: `txid < xmin` alone would deliver T1's event before T2's. The stream must wait."""
    insert = INSERT_EVENT
    after = events_pb2.WatchEventsRequest(after_sequence=max_sequence(database_url))
    collector = StreamCollector(events_stub(channel), after)
    t1 = psycopg.connect(database_url)
    t2 = psycopg.connect(database_url)
    try:
        t1.execute("SELECT pg_current_xact_id()")  # T1 has the lower transaction id
        t2.execute("SELECT pg_current_xact_id()")
        low = t2.execute(insert, (_outbox_payload(),)).fetchone()[0]  # type: ignore[index]
        high = t1.execute(insert, (_outbox_payload(),)).fetchone()[0]  # type: ignore[index]
        assert low < high
        t1.commit()
        time.sleep(0.5)
        early = [e.sequence for e in collector.events]
        assert early == [], f"delivered {early} while {low} was still in flight"
        t2.commit()
        _wait(lambda: len(collector.events) >= 2)
        assert [e.sequence for e in collector.events] == [low, high]
    finally:
        t1.close()
        t2.close()
        collector.close()


def test_a_rolled_back_sequence_is_skipped(channel: grpc.Channel, database_url: str) -> None:
    insert = INSERT_EVENT
    after = events_pb2.WatchEventsRequest(after_sequence=max_sequence(database_url))
    collector = StreamCollector(events_stub(channel), after)
    try:
        with psycopg.connect(database_url) as aborted:
            gap = aborted.execute(insert, (_outbox_payload(),)).fetchone()[0]  # type: ignore[index]
            aborted.rollback()
        with psycopg.connect(database_url) as committed:
            after_gap = committed.execute(insert, (_outbox_payload(),)).fetchone()[0]  # type: ignore[index]
        _wait(lambda: len(collector.events) >= 1)
        time.sleep(0.1)
        assert [e.sequence for e in collector.events] == [after_gap] and after_gap > gap
    finally:
        collector.close()


@pytest.fixture
def two_servers(database_url: str, ledger_server: LedgerServer) -> Iterator[tuple[str, str]]:
    """A second server on the same database: two group committers, so commits interleave."""
    second = LedgerServer(ServerConfig(listen="127.0.0.1:0", database_url=database_url)).start()
    yield ledger_server.target, second.target
    second.stop(grace_s=5)


def test_consumer_disconnecting_at_random_ends_with_exactly_the_outbox(
    two_servers: tuple[str, str], channel: grpc.Channel, database_url: str
) -> None:
    start = max_sequence(database_url)
    rng = random.Random(11)
    done = threading.Event()
    errors: list[BaseException] = []

    def producer(target: str, seed: int) -> None:
        try:
            with open_channel(target) as chan:
                produce(ledger_pb2_grpc.LedgerStub(chan), 120, seed=seed)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    producers = [threading.Thread(target=producer, args=(t, i)) for i, t in enumerate(two_servers * 2)]
    for thread in producers:
        thread.start()

    def finish() -> None:
        for thread in producers:
            thread.join()
        done.set()

    threading.Thread(target=finish, daemon=True).start()

    events = events_stub(channel)
    received: list[tuple[int, int]] = []
    last = start
    reconnects = 0
    while True:
        caught_up = done.is_set() and last >= max_sequence(database_url)
        if caught_up:
            break
        call = events.WatchEvents(events_pb2.WatchEventsRequest(after_sequence=last), timeout=30)
        budget = rng.randint(1, 40)
        timer = threading.Timer(rng.uniform(0.0, 0.3), call.cancel)  # disconnect mid-stream, even when idle
        timer.start()
        try:
            for event in call:
                received.append((event.sequence, event.type))
                last = event.sequence
                budget -= 1
                if budget == 0:
                    break
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.CANCELLED, error
        finally:
            timer.cancel()
            call.cancel()
        reconnects += 1
    assert not errors, errors
    assert reconnects > 10
    expected = outbox(database_url, after=start)
    assert received == expected, "gaps, duplicates or disorder in the resumed stream"
    assert [s for s, _ in received] == sorted({s for s, _ in received})


def test_live_latency_on_an_idle_server(stub: ledger_pb2_grpc.LedgerStub, channel: grpc.Channel) -> None:
    """Reported, not asserted: commit (the RPC's return) to arrival on a connected consumer."""
    asset = new_asset(stub)
    a, b = new_account(stub, asset).id, new_account(stub, asset).id
    collector = StreamCollector(events_stub(channel), events_pb2.WatchEventsRequest(
        account_ids=[a], event_types=[events_pb2.TRANSFER_POSTED]))
    after_return: list[float] = []
    from_start: list[float] = []
    try:
        time.sleep(0.3)
        for i in range(40):
            started = time.perf_counter()
            transfer(stub, a, b, 1, asset)
            returned = time.perf_counter()
            _wait(lambda i=i: len(collector.arrivals) > i, 5)
            from_start.append((collector.arrivals[i] - started) * 1000)
            after_return.append((collector.arrivals[i] - returned) * 1000)
            time.sleep(0.05)
    finally:
        collector.close()
    quantiles = statistics.quantiles(from_start, n=100, method="inclusive")
    print(f"\nWatchEvents live latency, RPC start -> event received (ms): p50 {statistics.median(from_start):.2f} "
          f"p99 {quantiles[98]:.2f} max {max(from_start):.2f}; after the RPC returned: "
          f"p50 {statistics.median(after_return):.2f} max {max(after_return):.2f}")


def test_interleaved_writers_commit_and_roll_back_the_stream_stays_ordered_and_complete(
    channel: grpc.Channel, database_url: str
) -> None:
    """Many raw transactions draw sequences, wait, then commit or roll back in random order (some
    write elsewhere first, some keep running long): the stream must deliver exactly the committed
    events, each once, in increasing order, never one before a lower one still in flight."""
    start = max_sequence(database_url)
    collector = StreamCollector(events_stub(channel), events_pb2.WatchEventsRequest(after_sequence=start))
    rng = random.Random(17)
    plans = [(rng.random() < 0.5, rng.uniform(0, 0.05), rng.uniform(0, 0.15), rng.random() < 0.2, rng.randint(1, 3))
             for _ in range(40)]

    def writer(early_write: bool, before_s: float, hold_s: float, roll_back: bool, rows: int) -> None:
        with psycopg.connect(database_url) as conn:
            if early_write:
                conn.execute("SELECT pg_current_xact_id()")
            time.sleep(before_s)
            for _ in range(rows):
                conn.execute(INSERT_EVENT, (_outbox_payload(),))
            time.sleep(hold_s)
            if roll_back:
                conn.rollback()
            else:
                conn.commit()

    threads = [threading.Thread(target=writer, args=plan) for plan in plans]
    try:
        for thread in threads:
            thread.start()
            time.sleep(0.005)
        for thread in threads:
            thread.join()
        committed = [s for s, _ in outbox(database_url, after=start)]
        _wait(lambda: len(collector.events) >= len(committed))
        time.sleep(0.2)
    finally:
        collector.close()
    delivered = [e.sequence for e in collector.events]
    assert delivered == committed
    assert any(p[3] for p in plans) and len(committed) < sum(p[4] for p in plans)  # some rolled back


def test_the_feed_follows_the_outbox_only_while_someone_watches(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody watching: the feed reads nothing and listens to nothing (no query and no wake-up per
    commit). The first stream starts it, events flow, and IDLE_STOP_S after the last stream ends it
    lets go, its LISTEN connection closed; the next stream starts it again from the current
    watermark."""
    from prometheus_client import CollectorRegistry

    from ledger_server.events import feed as feed_module
    from ledger_server.events.metrics import EventsMetrics

    monkeypatch.setattr(feed_module, "IDLE_STOP_S", 0.3)
    url = new_database()
    feed = feed_module.OutboxFeed(url, EventsMetrics(CollectorRegistry()), fallback_poll_s=0.05).start()
    try:
        time.sleep(0.3)
        assert not feed.wait_ready(0.01)  # idle from the start
        with psycopg.connect(url, autocommit=True) as conn:

            def listening() -> int:
                return int(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                        " AND query LIKE 'LISTEN %%'").fetchone()[0])  # type: ignore[index]

            def eventually(condition: Callable[[], bool]) -> bool:
                deadline = time.monotonic() + 5
                while not condition() and time.monotonic() < deadline:
                    time.sleep(0.02)
                return condition()

            assert listening() == 0
            first = conn.execute(INSERT_EVENT, (_outbox_payload(),)).fetchone()[0]  # type: ignore[index]
            feed.subscribe()
            assert feed.wait_ready(5)
            assert eventually(lambda: listening() == 1)
            start = feed.watermark
            second = conn.execute(INSERT_EVENT, (_outbox_payload(),)).fetchone()[0]  # type: ignore[index]
            feed.wait_beyond(start, 5, lambda: False)
            assert feed.watermark >= second > first
            assert [r.sequence for r in feed.buffered_after(start, 10) or []] == [second]
            feed.unsubscribe()
            deadline = time.monotonic() + 5
            while feed.wait_ready(0) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not feed.wait_ready(0)  # let go
            assert eventually(lambda: listening() == 0)
            third = conn.execute(INSERT_EVENT, (_outbox_payload(),)).fetchone()[0]  # type: ignore[index]
            feed.subscribe()
            assert feed.wait_ready(5)
            assert feed.watermark >= third  # started again from the current watermark
            assert feed.buffered_after(second, 10) is None  # older ones come from the database
            feed.unsubscribe()
    finally:
        feed.stop()
