"""Event delivery latency on an idle server: commit -> WatchEvents consumer, commit -> webhook receiver.

Run from the repository root: .venv/bin/python -m benchmarks.events_latency [--database-url URL] [--samples N]
(default: a fresh database on 127.0.0.1:5432, dropped afterwards). One transfer at a time, a pause
between them, so every number is a wake-up from idle: NOTIFY at commit -> probe -> send. A
transfer's commit happens inside its RPC, so the latency of each event is reported from the RPC's
start (an upper bound) and from its return (a lower bound).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid

import grpc
import psycopg

from ledger.v1 import events_pb2, events_service_pb2_grpc, ledger_pb2_grpc, webhooks_pb2
from ledger_server.access.callers import provision_admin_key
from ledger_server.events.component import EventsConfig
from ledger_server.events.webhooks.config import DispatcherConfig
from ledger_server.events.webhooks.url_policy import UrlPolicy
from ledger_server.migrate import migrate
from ledger_server.server import LedgerServer, ServerConfig
from tests.conftest import ADMIN_KEY, open_channel
from tests.ledger_api import new_account, new_asset, rid, transfer
from tests.webhook_receiver import WebhookReceiver

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def summary(name: str, values_ms: list[float]) -> str:
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return f"{name}: p50 {statistics.median(values_ms):.2f} ms, p99 {cuts[98]:.2f} ms, max {max(values_ms):.2f} ms"


def measure(database_url: str, samples: int) -> None:
    provision_admin_key(database_url, ADMIN_KEY)
    policy = UrlPolicy(allow_loopback=True, allow_http=True)
    config = ServerConfig(listen="127.0.0.1:0", database_url=database_url,
                          events=EventsConfig(webhooks=DispatcherConfig(policy=policy), url_policy=policy))
    server = LedgerServer(config).start()
    receiver = WebhookReceiver().start()
    try:
        with open_channel(server.target) as channel:
            ledger = ledger_pb2_grpc.LedgerStub(channel)
            events = events_service_pb2_grpc.LedgerEventsStub(channel)
            asset = new_asset(ledger)
            a, b = new_account(ledger, asset).id, new_account(ledger, asset).id
            events.CreateWebhookEndpoint(webhooks_pb2.CreateWebhookEndpointRequest(
                request_id=rid("bench"), url=receiver.url("/bench"), event_types=[events_pb2.TRANSFER_POSTED]))
            arrivals: list[float] = []
            stream = events.WatchEvents(events_pb2.WatchEventsRequest(
                account_ids=[a], event_types=[events_pb2.TRANSFER_POSTED]))

            def read() -> None:
                try:
                    for _ in stream:
                        arrivals.append(time.perf_counter())
                except grpc.RpcError:
                    pass  # cancelled at the end

            threading.Thread(target=read, daemon=True).start()
            time.sleep(0.5)
            starts, returns = [], []
            for _ in range(samples):
                starts.append(time.perf_counter())
                transfer(ledger, a, b, 1, asset)
                returns.append(time.perf_counter())
                time.sleep(0.05)
            deadline = time.monotonic() + 30
            while len(arrivals) < samples or len(receiver.successes("/bench")) < samples:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            stream.cancel()
            hooks = [r.at for r in receiver.successes("/bench")]
    finally:
        server.stop(grace_s=5)
        receiver.stop()
    # The receiver stamps with time.monotonic(); perf_counter and monotonic share a clock on Linux.
    print(f"{samples} events, one at a time, on an idle server")
    print(summary("WatchEvents, from RPC start ", [(t - s) * 1000 for t, s in zip(arrivals, starts, strict=False)]))
    print(summary("WatchEvents, from RPC return", [(t - r) * 1000 for t, r in zip(arrivals, returns, strict=False)]))
    print(summary("webhook,     from RPC start ", [(t - s) * 1000 for t, s in zip(hooks, starts, strict=False)]))
    print(summary("webhook,     from RPC return", [(t - r) * 1000 for t, r in zip(hooks, returns, strict=False)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    if args.database_url:
        migrate(args.database_url)
        measure(args.database_url, args.samples)
        return 0
    name = f"bench_events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        migrate(url)
        measure(url, args.samples)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
