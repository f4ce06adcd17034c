"""Fan-out: turn outbox events into deliveries, one per subscribed enabled endpoint, in order.

Runs in every dispatcher; the cursor row's lock (FOR UPDATE SKIP LOCKED) lets one at a time do it.
It never goes past the outbox's safe watermark (events/watermark.py): an endpoint's queue is
ordered by sequence, and a delivery created for 11 while 10 is still in flight could be sent first.
The deliveries and the cursor advance commit together, so a crash repeats nothing and skips nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from ledger_server import queries
from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.watermark import WatermarkTracker

log = logging.getLogger(__name__)
Q = queries.load("webhooks")

EVENTS_PER_TRANSACTION = 1000


class FanOut:
    def __init__(self, metrics: EventsMetrics) -> None:
        self._tracker = WatermarkTracker()
        self._metrics = metrics

    @property
    def waiting(self) -> bool:
        """True while the watermark waits for running transactions (check again soon)."""
        return self._tracker.waiting

    def run(self, probe_conn: psycopg.Connection[Any], conn: psycopg.Connection[Any], rounds_max: int = 20) -> int:
        """Create the deliveries of events up to the safe watermark; returns how many were created.
        `probe_conn` is in autocommit mode (the watermark probe), `conn` runs the transactions."""
        watermark = self._tracker.advance(probe_conn)
        created = 0
        for _ in range(rounds_max):
            step = self._step(conn, watermark)
            if step is None:
                break
            created += step
        self._metrics.fanned_out.inc(created)
        return created

    def _step(self, conn: psycopg.Connection[Any], watermark: int) -> int | None:
        """One transaction: up to EVENTS_PER_TRANSACTION events; None when there is nothing to do
        (or another dispatcher holds the cursor)."""
        with conn.transaction():
            row = conn.execute(Q["lock_fanout_cursor"]).fetchone()
            if row is None or int(row[0]) >= watermark:
                return None
            after = int(row[0])
            upto = min(watermark, after + EVENTS_PER_TRANSACTION)
            created = conn.execute(Q["fan_out"], {"after": after, "upto": upto}).rowcount
            advanced = conn.execute(Q["advance_fanout_cursor"], {"after": after, "upto": upto}).rowcount
            assert advanced == 1, "the fan-out cursor moved under its lock"
            return created
