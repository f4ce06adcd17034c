"""One per server: follows the outbox's safe watermark and keeps the newest events in memory.

A NOTIFY (or a slow fallback poll) wakes the feed thread; it probes the watermark, reads the new
events once and wakes every WatchEvents stream, which serves them from memory. The feed follows the
outbox only while someone watches: with no stream for IDLE_STOP_S it lets go (two queries per
commit saved on a server nobody watches, and its LISTEN connection is closed, so commits do not
wake it) and the next stream starts it again from the current
watermark (streams that resume from older sequences read those from the database, as always). A stream that is
further behind than the buffer reads the database itself (see stream.py). The buffer always holds
every event with floor < sequence <= watermark, so a stream never has to guess about holes
(sequences of rolled-back transactions are simply absent).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger_server import queries
from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.notifications import OUTBOX_CHANNEL, NotificationListener
from ledger_server.events.watermark import WatermarkTracker

log = logging.getLogger(__name__)
Q = queries.load("events")

READ_BATCH_EVENTS = 1000
RECHECK_FIRST_S = 0.002  # while a probe waits for running transactions: 2 ms, doubling
RECHECK_MAX_S = 0.1
IDLE_STOP_S = 30.0  # stop following the outbox this long after the last stream ended


@dataclass(frozen=True)
class OutboxRow:
    sequence: int
    event_type: int
    payload: bytes


class OutboxFeed:
    def __init__(
        self, conninfo: str, metrics: EventsMetrics, fallback_poll_s: float = 1.0,
        buffer_events_max: int = 10_000, buffer_bytes_max: int = 16 * 1024 * 1024,
    ) -> None:
        assert fallback_poll_s > 0 and buffer_events_max > 0 and buffer_bytes_max > 0
        self._conninfo = conninfo
        self._metrics = metrics
        self._fallback_poll_s = fallback_poll_s
        self._buffer_events_max = buffer_events_max
        self._buffer_bytes_max = buffer_bytes_max
        self._changed = threading.Condition()
        self._buffer: collections.deque[OutboxRow] = collections.deque()
        self._buffer_bytes = 0
        self._floor = 0  # every event above floor and up to watermark is in the buffer
        self._watermark = 0
        self._ready = threading.Event()
        self._stopped = False
        self._wake = threading.Event()
        self._subscribers = 0
        self._idle_since: float | None = time.monotonic()
        self._active = threading.Event()  # set while at least one stream needs the feed
        # Listens only while the feed is active: nobody watching, no wake-up per commit.
        self._listener = NotificationListener(conninfo, [OUTBOX_CHANNEL], lambda _: self._wake.set(), "outbox-listen",
                                              gate=self._active)
        self._thread = threading.Thread(target=self._run, name="outbox-feed", daemon=True)

    def start(self) -> OutboxFeed:
        self._listener.start()
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the first watermark is known (streams wait for it)."""
        return self._ready.wait(timeout_s)

    def subscribe(self) -> None:
        """A stream starts: the feed follows the outbox (again) until IDLE_STOP_S after the last ends."""
        with self._changed:
            self._subscribers += 1
            self._idle_since = None
            self._active.set()
        self._wake.set()

    def unsubscribe(self) -> None:
        with self._changed:
            assert self._subscribers > 0
            self._subscribers -= 1
            if self._subscribers == 0:
                self._idle_since = time.monotonic()

    def _let_go_if_idle(self) -> bool:
        """True when nobody has watched for IDLE_STOP_S: the buffer is dropped and the feed waits."""
        with self._changed:
            if self._idle_since is None or time.monotonic() - self._idle_since < IDLE_STOP_S:
                return False
            self._active.clear()
            self._ready.clear()
            self._buffer.clear()
            self._buffer_bytes = 0
            self._floor = self._watermark
            return True

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._active.set()
        self._wake.set()
        self._listener.stop()
        self._thread.join(timeout=10)

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def watermark(self) -> int:
        return self._watermark

    def wait_beyond(self, after: int, timeout_s: float, gone: Callable[[], bool]) -> None:
        """Block until the watermark passes `after`, the feed stops, the caller is `gone` (checked on
        every wake-up, see wake_all), or the timeout ends."""
        with self._changed:
            self._changed.wait_for(lambda: self._watermark > after or self._stopped or gone(), timeout_s)

    def wake_all(self) -> None:
        """Wake every waiting stream (e.g. one of them was cancelled)."""
        with self._changed:
            self._changed.notify_all()

    def buffered_after(self, after: int, limit: int) -> list[OutboxRow] | None:
        """Up to `limit` buffered events with sequence > after, or None when the buffer does not
        reach back that far (the caller reads the database instead)."""
        with self._changed:
            if after < self._floor:
                return None
            rows: list[OutboxRow] = []
            # The buffer is short and sorted: skip from the left.
            for row in self._buffer:
                if row.sequence > after:
                    rows.append(row)
                    if len(rows) >= limit:
                        break
            return rows

    # -- the feed thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        tracker: WatermarkTracker | None = None
        recheck = RECHECK_FIRST_S
        backoff = 0.1
        while not self._stopped:
            self._active.wait()
            if self._stopped:
                return
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    if tracker is None:
                        tracker = self._initial_tracker(conn)
                    backoff = 0.1
                    while not self._stopped:
                        if self._let_go_if_idle():
                            tracker = None
                            break
                        self._wake.clear()
                        started = time.perf_counter()
                        self._catch_up(conn, tracker)
                        self._metrics.watermark_probe_seconds.observe(time.perf_counter() - started)
                        if tracker.waiting:
                            self._wake.wait(recheck)
                            recheck = min(RECHECK_MAX_S, recheck * 2)
                        else:
                            recheck = RECHECK_FIRST_S
                            self._wake.wait(self._fallback_poll_s)
                continue  # idle: let go of the connection and wait for the next stream
            except psycopg.Error as error:
                log.warning("outbox feed lost its connection: %s", error)
            except Exception:
                log.exception("outbox feed failed")
            time.sleep(backoff)  # never spin on a persistent failure
            backoff = min(5.0, backoff * 2)

    def _initial_tracker(self, conn: psycopg.Connection[Any]) -> WatermarkTracker:
        """Start from the current safe watermark (older events are read from the database by the
        streams that need them): the first probe, or, if transactions were running then, the
        probe that settles it."""
        tracker = WatermarkTracker()
        deadline = time.monotonic() + 30
        tracker.advance(conn)
        while tracker.waiting and tracker.safe == 0 and time.monotonic() < deadline and not self._stopped:
            time.sleep(RECHECK_FIRST_S)
            tracker.advance(conn)
        with self._changed:
            self._floor = self._watermark = tracker.safe
            self._changed.notify_all()
        self._ready.set()
        return tracker

    def _catch_up(self, conn: psycopg.Connection[Any], tracker: WatermarkTracker) -> None:
        target = tracker.advance(conn)
        while self._watermark < target and not self._stopped:
            upto = target
            rows = conn.execute(Q["outbox_after"], {
                "after": self._watermark, "upto": upto, "event_types": [], "account_ids": [],
                "limit": READ_BATCH_EVENTS,
            }).fetchall()
            if len(rows) == READ_BATCH_EVENTS:
                upto = int(rows[-1][0])
            self._publish([OutboxRow(int(s), int(t), bytes(p)) for s, t, p in rows], upto)
        self._metrics.watermark.set(self._watermark)

    def _publish(self, rows: list[OutboxRow], watermark: int) -> None:
        assert watermark >= self._watermark
        assert all(self._watermark < r.sequence <= watermark for r in rows)
        with self._changed:
            for row in rows:
                self._buffer.append(row)
                self._buffer_bytes += len(row.payload)
            while self._buffer and (
                len(self._buffer) > self._buffer_events_max or self._buffer_bytes > self._buffer_bytes_max
            ):
                evicted = self._buffer.popleft()
                self._buffer_bytes -= len(evicted.payload)
                self._floor = evicted.sequence
            if not self._buffer:
                self._floor = watermark
            self._watermark = watermark
            self._changed.notify_all()
