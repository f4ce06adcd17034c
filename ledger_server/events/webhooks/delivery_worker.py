"""Delivering one leased endpoint's queue, head first, one request at a time.

The lease (dispatcher.py) makes this worker the only sender to the endpoint, and the queue head is
always the lowest pending sequence, so the first successful delivery of each event happens in
sequence order. No transaction is open during an HTTP request: each attempt is

  1. a short transaction: check the lease, lock the head, count the attempt, mark it in flight;
  2. the request (bounded by the timeout; the lease outlives it);
  3. a short transaction: record the attempt, then delivered / next attempt time / dead, the
     endpoint's failure streak, and maybe its disabling; renew the lease on success.

A dispatcher killed between 1 and 3 leaves the head marked in flight; the next lease holder records
that attempt as abandoned and sends again (same webhook-id: the receiver dedupes). Holding row locks
across the request would have kept a transaction id open for seconds, which stalls the outbox
watermark (events/watermark.py) for every consumer.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ledger.v1 import events_pb2, webhooks_pb2
from ledger_server import queries
from ledger_server.events.metrics import EventsMetrics
from ledger_server.events.webhooks import endpoints
from ledger_server.events.webhooks.config import DispatcherConfig
from ledger_server.events.webhooks.http_sender import AttemptResult, HttpSender
from ledger_server.events.webhooks.payload import webhook_body
from ledger_server.events.webhooks.signing import signature_header

log = logging.getLogger(__name__)
Q = queries.load("webhooks")

HEADS_SKIPPED_MAX = 100  # abandoned heads dead-lettered in one go before giving the lease back


@dataclass(frozen=True)
class Lease:
    endpoint_id: uuid.UUID
    token: uuid.UUID


@dataclass(frozen=True)
class AttemptJob:
    delivery_id: uuid.UUID
    sequence: int
    number: int           # attempt number of the delivery (all time)
    cycle_attempts: int   # position in the current retry schedule
    started_at: dt.datetime
    url: str
    payload: bytes
    secrets: tuple[str, ...]


class DeliveryWorker:
    def __init__(self, pool: ConnectionPool[Any], config: DispatcherConfig, metrics: EventsMetrics,
                 stopping: threading.Event) -> None:
        self._pool = pool
        self._config = config
        self._metrics = metrics
        self._stopping = stopping
        self._sender = HttpSender(config.policy, config.request_timeout_s, config.response_bytes_max)

    def drain(self, lease: Lease) -> int:
        """Deliver the endpoint's due deliveries in order until a failure, an empty or not-yet-due
        queue, a lost lease, a stop, or the per-lease bound; returns the number delivered."""
        delivered = 0
        try:
            for _ in range(self._config.deliveries_per_lease):
                if self._stopping.is_set():
                    break
                job = self._begin(lease)
                if job is None:
                    break
                result = self._send(job)
                if not self._record(lease, job, result):
                    break
                delivered += 1
        finally:
            with self._pool.connection() as conn:
                conn.execute(Q["release_lease"], {"id": lease.endpoint_id, "token": lease.token})
        return delivered

    # -- 1. begin ---------------------------------------------------------------------------------

    def _begin(self, lease: Lease) -> AttemptJob | None:
        with self._pool.connection() as conn, conn.transaction():
            endpoint = conn.execute(Q["leased_endpoint"], {"id": lease.endpoint_id, "token": lease.token}).fetchone()
            if endpoint is None:
                return None
            for _ in range(HEADS_SKIPPED_MAX):
                head = conn.execute(Q["queue_head"], {"id": lease.endpoint_id}).fetchone()
                if head is None:
                    return None
                delivery_id, sequence, attempt_count, cycle_attempts, due, in_flight_since, payload = head
                if in_flight_since is not None:
                    if not self._abandoned(conn, delivery_id, attempt_count, cycle_attempts, in_flight_since):
                        continue  # dead-lettered: look at the next head
                elif not due:
                    return None
                started = conn.execute(Q["start_attempt"], {"id": delivery_id}).fetchone()
                assert started is not None
                number, cycle, started_at = started
                secrets = tuple(row[0] for row in conn.execute(Q["signing_secrets"], {"id": lease.endpoint_id}))
                return AttemptJob(delivery_id, int(sequence), int(number), int(cycle), started_at, str(endpoint[0]),
                                  bytes(payload), secrets)
        return None

    def _abandoned(self, conn: psycopg.Connection[Any], delivery_id: uuid.UUID, number: int, cycle_attempts: int,
                   started_at: dt.datetime) -> bool:
        """Record the attempt a stopped dispatcher left in flight; True if the delivery may be tried
        again, False if that attempt was its last (it is dead now)."""
        elapsed_ms = max(0, int((dt.datetime.now(dt.UTC) - started_at).total_seconds() * 1000))
        conn.execute(Q["insert_attempt"], {
            "delivery_id": delivery_id, "number": number, "started_at": started_at,
            "duration_ms": min(elapsed_ms, 2**31 - 1), "status_code": 0,
            "outcome": webhooks_pb2.WEBHOOK_ATTEMPT_ABANDONED,
            "error": "the dispatcher stopped during this attempt; its result is unknown", "excerpt": "",
        })
        self._metrics.attempts.labels("abandoned").inc()
        if cycle_attempts < self._config.schedule.attempts:
            return True
        conn.execute(Q["mark_dead"], {"id": delivery_id, "reason": f"no 2xx answer after {cycle_attempts} attempts"})
        self._metrics.dead.inc()
        return False

    # -- 2. send ----------------------------------------------------------------------------------

    def _send(self, job: AttemptJob) -> AttemptResult:
        body = webhook_body(job.sequence, job.payload)
        message_id = str(job.delivery_id)
        timestamp = int(time.time())
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(job.secrets, message_id, timestamp, body),
        }
        result = self._sender.post(job.url, headers, body)
        outcome = webhooks_pb2.WebhookAttemptOutcome.Name(result.outcome)
        self._metrics.attempts.labels(outcome.removeprefix("WEBHOOK_ATTEMPT_").lower()).inc()
        self._metrics.attempt_seconds.observe(result.duration_ms / 1000)
        return result

    # -- 3. record --------------------------------------------------------------------------------

    def _record(self, lease: Lease, job: AttemptJob, result: AttemptResult) -> bool:
        """Store the attempt and its consequences; True to continue with the next head."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(Q["insert_attempt"], {
                "delivery_id": job.delivery_id, "number": job.number, "started_at": job.started_at,
                "duration_ms": result.duration_ms, "status_code": result.status_code, "outcome": result.outcome,
                "error": result.error, "excerpt": result.response_excerpt,
            })
            if result.succeeded:
                conn.execute(Q["mark_delivered"], {"id": job.delivery_id})
                holds: bool = conn.execute(Q["renew_lease"], {
                    "id": lease.endpoint_id, "token": lease.token, "lease_s": self._config.effective_lease_s,
                }).rowcount == 1
                if holds:
                    conn.execute(Q["endpoint_succeeded"], {"id": lease.endpoint_id})
                return holds
            if conn.execute(Q["leased_endpoint"], {"id": lease.endpoint_id, "token": lease.token}).fetchone() is None:
                return False  # someone else owns the queue now: the attempt is recorded, nothing more
            self._failed(conn, lease, job, result)
            return False

    def _failed(self, conn: psycopg.Connection[Any], lease: Lease, job: AttemptJob, result: AttemptResult) -> None:
        row = conn.execute(Q["endpoint_failed"], {
            "id": lease.endpoint_id, "started_at": job.started_at, "disable_after_s": self._config.disable_after_s,
        }).fetchone()
        assert row is not None
        failing_since, failing_too_long = row
        if result.gone or failing_too_long:
            reason = events_pb2.WEBHOOK_DISABLED_GONE if result.gone else events_pb2.WEBHOOK_DISABLED_FAILING
            endpoints.disable(conn, lease.endpoint_id, reason, failing_since)
            label = events_pb2.WebhookDisabledReason.Name(reason).removeprefix("WEBHOOK_DISABLED_").lower()
            self._metrics.endpoints_disabled.labels(label).inc()
            log.warning("webhook endpoint %s disabled (%s)", lease.endpoint_id, label)
            return
        delay = self._config.schedule.delay_after_failure(job.cycle_attempts, result.retry_after_s)
        if delay is None:
            dead_reason = f"no 2xx answer after {job.cycle_attempts} attempts; last: {result.error}"[:200]
            conn.execute(Q["mark_dead"], {"id": job.delivery_id, "reason": dead_reason})
            self._metrics.dead.inc()
        else:
            conn.execute(Q["schedule_retry"], {"id": job.delivery_id, "delay_s": delay})
