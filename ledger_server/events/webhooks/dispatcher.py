"""The webhook dispatcher: fan out new events, lease due endpoints, deliver with bounded concurrency.

Several dispatchers (processes, or the server's in-process one) can run at once: the fan-out
cursor and the endpoint leases are taken with FOR UPDATE SKIP LOCKED, so they never wait for each
other and never deliver the same endpoint's queue at the same time. A dispatcher that dies
(SIGKILL) loses nothing: its leases expire and another one takes over, repeating at most the
attempts that were in flight (the receiver sees the same webhook-id again).

Wake-ups: LISTEN on the outbox channel (new events) and the webhooks channel (replays, re-enabled
endpoints), a worker finishing, or the time the earliest queue head becomes due; a slow fallback
poll covers anything missed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ledger_server import queries
from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.notifications import OUTBOX_CHANNEL, WEBHOOKS_CHANNEL, NotificationListener
from ledger_server.events.webhooks.config import DispatcherConfig
from ledger_server.events.webhooks.delivery_worker import DeliveryWorker, Lease
from ledger_server.events.webhooks.fanout import FanOut

log = logging.getLogger(__name__)
Q = queries.load("webhooks")

WATERMARK_RECHECK_S = 0.005
PURGE_INTERVAL_S = 3600.0
PURGE_BATCH_ROWS = 1000
PURGE_BATCHES_MAX = 20


class Dispatcher:
    def __init__(self, conninfo: str, config: DispatcherConfig, metrics: EventsMetrics) -> None:
        self._conninfo = conninfo
        self._config = config
        self._metrics = metrics
        self._pool: ConnectionPool[Any] = ConnectionPool(
            conninfo, min_size=1, max_size=min(config.concurrency, 8) + 1, kwargs={"autocommit": True},
            open=False, timeout=30, name="ledger-webhooks",
        )
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._active = 0
        self._active_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="webhook")
        self._worker = DeliveryWorker(self._pool, config, metrics, self._stopping)
        self._fanout = FanOut(metrics)
        self._listener = NotificationListener(
            conninfo, [OUTBOX_CHANNEL, WEBHOOKS_CHANNEL], lambda _: self._wake.set(), "webhooks-listen"
        )
        self._thread = threading.Thread(target=self._run, name="webhook-dispatcher", daemon=True)
        self._next_purge = time.monotonic() + 60.0

    def start(self) -> Dispatcher:
        self._pool.open(wait=True, timeout=30)
        self._listener.start()
        self._thread.start()
        log.info("webhook dispatcher started (concurrency %d)", self._config.concurrency)
        return self

    def stop(self, grace_s: float = 10.0) -> None:
        """Finish the attempts in flight (bounded by the request timeout), give the leases back."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=grace_s)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._listener.stop()
        self._pool.close()
        log.info("webhook dispatcher stopped")

    def wait(self) -> None:
        while self._thread.is_alive():
            self._thread.join(timeout=1.0)

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        probe: psycopg.Connection[Any] | None = None
        backoff = 0.1
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if probe is None or probe.closed:
                    probe = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                timeout = self._one_round(probe)
                backoff = 0.1
            except Exception as error:
                if isinstance(error, psycopg.Error):
                    log.warning("webhook dispatcher round failed: %s", error)
                else:
                    log.exception("webhook dispatcher round failed")
                if probe is not None:
                    probe.close()
                probe = None
                self._stopping.wait(backoff)  # never spin on a persistent failure
                backoff = min(5.0, backoff * 2)
                continue
            self._wake.wait(timeout)
        if probe is not None:
            probe.close()

    def _one_round(self, probe: psycopg.Connection[Any]) -> float:
        """Fan out, claim, dispatch; returns how long to sleep unless woken."""
        with self._pool.connection() as conn:
            self._fanout.run(probe, conn)
        self._dispatch_due()
        if time.monotonic() >= self._next_purge:
            self._purge()
        if self._fanout.waiting:
            return WATERMARK_RECHECK_S
        return self._until_next_due(probe)

    def _free_slots(self) -> int:
        with self._active_lock:
            return self._config.concurrency - self._active

    def _dispatch_due(self) -> None:
        free = self._free_slots()
        if free <= 0:
            return
        token = uuid.uuid4()
        with self._pool.connection() as conn:
            claimed = [row[0] for row in conn.execute(Q["claim_endpoints"], {
                "limit": free, "token": token, "lease_s": self._config.effective_lease_s,
            }).fetchall()]
        for endpoint_id in claimed:
            with self._active_lock:
                self._active += 1
                self._metrics.in_flight.set(self._active)
            self._executor.submit(self._drain, Lease(endpoint_id, token))

    def _drain(self, lease: Lease) -> None:
        try:
            self._worker.drain(lease)
        except Exception:
            log.exception("delivering to endpoint %s failed", lease.endpoint_id)
        finally:
            with self._active_lock:
                self._active -= 1
                self._metrics.in_flight.set(self._active)
            self._wake.set()

    def _until_next_due(self, probe: psycopg.Connection[Any]) -> float:
        if self._free_slots() <= 0:
            return self._config.poll_interval_s  # a finishing worker wakes the loop
        row = probe.execute(Q["seconds_until_next_due"]).fetchone()
        if row is None or row[0] is None:
            return self._config.poll_interval_s
        return max(0.0, min(self._config.poll_interval_s, float(row[0])))

    def _purge(self) -> None:
        self._next_purge = time.monotonic() + PURGE_INTERVAL_S
        with self._pool.connection() as conn:
            purged = purge_expired(conn, self._config.retention_s)
        if purged:
            log.info("purged %d webhook deliveries past retention", purged)


def purge_expired(conn: psycopg.Connection[Any], retention_s: float) -> int:
    """Delete final deliveries (and their attempts) idle for `retention_s`, in bounded batches;
    returns how many deliveries went. The database refuses anything younger than 30 days."""
    purged = 0
    for _ in range(PURGE_BATCHES_MAX):
        count = conn.execute(Q["purge_expired"], {"retention_s": retention_s, "limit": PURGE_BATCH_ROWS}).rowcount
        purged += count
        if count < PURGE_BATCH_ROWS:
            break
    return purged
