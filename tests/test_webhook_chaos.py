"""Acceptance 1: a receiver that fails 30% of requests and stalls past the timeout on 10%, two
`ledger-webhooks` processes killed with SIGKILL mid-batch several times. At the end:

* every event reached each subscribed endpoint at least once (a 2xx answer);
* per-endpoint order: the FIRST successful delivery of each event happens in sequence order,
  per endpoint (later duplicates of an event, from retries after a kill, may come after newer ones);
* a duplicate always carries the same webhook-id, and a webhook-id never names two events;
* every signature verifies.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name, and tests take them as parameters
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ledger.v1 import events_pb2, events_service_pb2_grpc, ledger_pb2_grpc, webhooks_pb2
from tests.conftest import ROOT
from tests.events_api import produce
from tests.ledger_api import rid
from tests.webhook_fixtures import (  # noqa: F401 - fixtures, used by name
    events,
    ledger,
    receiver,
    webhook_channel,
    webhook_database,
    webhook_server,
)
from tests.webhook_receiver import Behaviour, WebhookReceiver

TIMEOUT = "400ms"
SCHEDULE = ",".join(["0"] + ["30ms"] * 24)  # compressed; 25 attempts: dead letters are (0.4^25) unlikely


class DispatcherProcess:
    """`ledger-webhooks` as a child process, killed with SIGKILL (no cleanup, leases left behind)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DispatcherProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ledger_server.events.webhooks.main", "--database-url", self.database_url,
             "--retry-schedule", SCHEDULE, "--retry-jitter", "0.2", "--request-timeout", TIMEOUT, "--lease", "1500ms",
             "--concurrency", "4", "--poll-interval", "100ms", "--allow-loopback", "--allow-http",
             "--log-level", "WARNING"],
            cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def dispatchers(webhook_database: str) -> Iterator[list[DispatcherProcess]]:
    started = [DispatcherProcess(webhook_database).start() for _ in range(2)]
    yield started
    for dispatcher in started:
        if dispatcher.alive():
            dispatcher.kill()


def _pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_deliveries WHERE state <> 2").fetchone()
    assert row is not None
    return int(row[0])


def test_chaos_every_event_arrives_in_order_with_stable_ids(
    events: events_service_pb2_grpc.LedgerEventsStub, ledger: ledger_pb2_grpc.LedgerStub,
    receiver: WebhookReceiver, webhook_database: str, dispatchers: list[DispatcherProcess],
) -> None:
    everything = events.CreateWebhookEndpoint(webhooks_pb2.CreateWebhookEndpointRequest(
        request_id=rid("hook"), url=receiver.url("/all")))
    transfers_only = events.CreateWebhookEndpoint(webhooks_pb2.CreateWebhookEndpointRequest(
        request_id=rid("hook"), url=receiver.url("/transfers"), event_types=[events_pb2.TRANSFER_POSTED]))
    chaos = Behaviour(fail_ratio=0.3, stall_ratio=0.1, stall_s=0.9, success_delay_s=0.1)
    for path, endpoint in (("/all", everything), ("/transfers", transfers_only)):
        receiver.secrets[path] = [endpoint.secret]
        receiver.behave(path, chaos)

    rng = random.Random(5)
    produce(ledger, 60, seed=21)
    kills = 0
    deadline = time.monotonic() + 25
    while kills < 6 and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 1.0))
        produce(ledger, 15, seed=100 + kills)
        # Shortly after new events: their first attempts (and retries of failed ones) are in flight.
        # A kill at a random moment of an idle second could miss every attempt.
        time.sleep(rng.uniform(0.05, 0.3))
        victim = rng.choice(dispatchers)
        victim.kill()  # mid-batch: attempts in flight, leases held
        kills += 1
        victim.start()
    assert kills >= 5

    settle = time.monotonic() + 120
    while _pending(webhook_database) > 0:
        assert time.monotonic() < settle, f"{_pending(webhook_database)} deliveries never completed"
        assert all(d.alive() for d in dispatchers), "a dispatcher died"
        time.sleep(0.2)

    with psycopg.connect(webhook_database) as conn:
        expected = {
            path: [int(r[0]) for r in conn.execute(
                "SELECT sequence FROM outbox o JOIN webhook_endpoints e ON e.id = %s "
                "WHERE o.sequence > e.start_after_sequence "
                "AND (cardinality(e.event_types) = 0 OR o.event_type = ANY (e.event_types)) ORDER BY sequence",
                (uuid.UUID(endpoint.id),)).fetchall()]
            for path, endpoint in (("/all", everything), ("/transfers", transfers_only))
        }
        abandoned = conn.execute("SELECT count(*) FROM webhook_attempts WHERE outcome = 6").fetchone()
        dead = conn.execute("SELECT count(*) FROM webhook_deliveries WHERE state = 3").fetchone()
    assert dead == (0,)

    total_duplicates = 0
    for path, sequences in expected.items():
        requests = receiver.requests(path)
        first_success: dict[int, float] = {}
        for request in receiver.successes(path):
            first_success.setdefault(request.sequence, request.at)
        assert sorted(first_success) == sequences, f"{path}: some events never arrived"
        by_time = sorted(first_success, key=lambda sequence: first_success[sequence])
        assert by_time == sequences, f"{path}: first successful deliveries out of sequence order"
        ids_of: dict[int, set[str]] = {}
        events_of: dict[str, set[int]] = {}
        for request in requests:
            ids_of.setdefault(request.sequence, set()).add(request.webhook_id)
            events_of.setdefault(request.webhook_id, set()).add(request.sequence)
        assert all(len(ids) == 1 for ids in ids_of.values()), f"{path}: an event was sent under two webhook-ids"
        assert all(len(s) == 1 for s in events_of.values()), f"{path}: a webhook-id named two events"
        assert all(r.verified_with for r in requests), f"{path}: a signature did not verify"
        duplicates = len(receiver.successes(path)) - len(first_success)
        total_duplicates += duplicates
        print(f"\n{path}: {len(sequences)} events, {len(requests)} requests, {duplicates} duplicate 2xx, "
              f"{kills} SIGKILLs, {abandoned[0] if abandoned else 0} abandoned attempts in total")
    mid_attempt = total_duplicates + (abandoned[0] if abandoned else 0)
    assert mid_attempt > 0, "no kill landed mid-attempt: the test proved little"
