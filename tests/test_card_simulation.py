"""Acceptance: the processor simulator runs 10,000 lifecycles with 10% duplicates and 20% reordering
through the real gateway and a real ledger; every account ends exactly as the simulator expects and
ledger-verify passes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence

import psycopg
import pytest

from ledger_cards.simulator import RunReport, Simulator
from ledger_client import AsyncLedgerClient, LedgerClient
from tests.card_gateway import GATEWAY_ADMIN_KEY, GatewayProcess
from tests.conftest import ADMIN_KEY, RUN_SUMMARY, ServerProcess, kill_one_process_and_expect_the_unit_to_stop
from tests.invariants import assert_ledger_consistent
from tests.redis_process import RedisProcess

LIFECYCLES = int(os.environ.get("CARD_SIMULATION_LIFECYCLES", "10000"))


def assert_every_event_applied(database_url: str) -> None:
    """No event failed or is still waiting, no transaction was marked by a plan the ledger refused,
    and the ledger's invariants hold."""
    with psycopg.connect(database_url) as conn:
        failed = conn.execute("SELECT event_token, outcome FROM card_events WHERE outcome ? 'error'").fetchall()
        stuck = conn.execute("SELECT count(*) FROM card_events WHERE applied_at IS NULL").fetchone()
        rejected = conn.execute("SELECT token, review FROM card_transactions WHERE review LIKE 'ledger_rejected%'"
                                ).fetchall()
    assert failed == []
    assert stuck == (0,)
    assert rejected == [], rejected[:5]  # an event applied twice (its second plan refused by the ledger)
    assert_ledger_consistent(database_url)


def simulate(ledger_target: str, gateway: GatewayProcess, lifecycles: int, cards: int, concurrency: int,
             seed: int = 7, replica_urls: Sequence[str] = ()) -> RunReport:
    """The processor simulator against `gateway` (and replicas): 10% duplicates, 20% reordering."""
    async def run() -> RunReport:
        async with AsyncLedgerClient(ledger_target, token=ADMIN_KEY, timeout=60) as client:
            simulator = Simulator(gateway.url, gateway.secret, GATEWAY_ADMIN_KEY, client, concurrency=concurrency,
                                  replica_urls=replica_urls)
            try:
                return await simulator.run(lifecycles, cards=cards, seed=seed, duplicate_rate=0.10,
                                           reorder_rate=0.20)
            finally:
                await simulator.close()

    return asyncio.run(run())


@pytest.fixture
def stack(database_url: str) -> Iterator[tuple[ServerProcess, GatewayProcess]]:
    unlimited = {"LEDGER_RATE_LIMIT": "1000000", "LEDGER_RATE_LIMIT_BURST": "1000000"}
    ledger = ServerProcess(database_url, extra_env=unlimited).start()
    redis_server = RedisProcess().start()
    gateway = GatewayProcess(database_url, ledger.target, redis_server.url,
                             extra_args=["--workers", "24", "--auth-budget-ms", "3000"]).start()
    yield ledger, gateway
    gateway.stop()
    redis_server.kill()
    ledger.terminate()


def test_ten_thousand_lifecycles_with_duplicates_and_reordering_end_exactly_as_expected(
    stack: tuple[ServerProcess, GatewayProcess], database_url: str
) -> None:
    ledger_process, gateway = stack
    with LedgerClient(ledger_process.target, token=ADMIN_KEY) as ledger:
        ledger.create_asset(code="USD", scale=2, request_id="simulation-asset-USD")

    report = simulate(ledger_process.target, gateway, LIFECYCLES, cards=max(10, min(1_000, LIFECYCLES // 10)),
                      concurrency=48)
    RUN_SUMMARY.append("card simulation: " + report.summary())
    assert report.mismatches == [], report.mismatches[:10]
    assert report.duplicates_sent >= 0.08 * report.events
    assert report.reordered >= 0.15
    assert_every_event_applied(database_url)


REPLICA_LIFECYCLES = int(os.environ.get("CARD_REPLICA_SIMULATION_LIFECYCLES", "2000"))


def test_two_gateway_replicas_share_the_traffic_and_every_event_applies_once(
    new_database: Callable[[], str]
) -> None:
    """Two `ledger-card-gateway serve` processes on one database, Redis and ledger; the processor's
    requests (authorizations, deliveries, duplicates, retries) land on either at random, so a
    duplicate is often applied for by the other replica. The books still end exactly as expected."""
    database_url = new_database()
    unlimited = {"LEDGER_RATE_LIMIT": "1000000", "LEDGER_RATE_LIMIT_BURST": "1000000"}
    ledger_process = ServerProcess(database_url, extra_env=unlimited).start()
    redis_server = RedisProcess().start()
    args = ["--workers", "12", "--auth-budget-ms", "3000"]
    first = GatewayProcess(database_url, ledger_process.target, redis_server.url, extra_args=args).start()
    second = GatewayProcess(database_url, ledger_process.target, redis_server.url, extra_args=args,
                            secret=first.secret).start()
    try:
        with LedgerClient(ledger_process.target, token=ADMIN_KEY) as ledger:
            ledger.create_asset(code="USD", scale=2, request_id="simulation-asset-USD")

        report = simulate(ledger_process.target, first, REPLICA_LIFECYCLES, cards=max(10, REPLICA_LIFECYCLES // 10),
                          concurrency=32, seed=11, replica_urls=[second.url])
    finally:
        second.stop()
        first.stop()
        redis_server.kill()
        ledger_process.terminate()
    RUN_SUMMARY.append("card simulation, 2 gateway replicas: " + report.summary())
    assert report.mismatches == [], report.mismatches[:10]
    assert_every_event_applied(database_url)


def test_gateway_and_ledger_as_two_processes_each_and_a_dying_gateway_process_stops_its_unit(
    new_database: Callable[[], str]
) -> None:
    """`ledger-card-gateway serve --processes 2` in front of `ledger-server --processes 2` (the
    gateway spreading its ledger calls over 8 connections): a simulation ends exactly as expected.
    Then one gateway process is killed (-9): the gateway's parent stops the other and exits 1."""
    database_url = new_database()
    ledger_env = {"LEDGER_RATE_LIMIT": "1000000", "LEDGER_RATE_LIMIT_BURST": "1000000", "LEDGER_PROCESSES": "2"}
    ledger_process = ServerProcess(database_url, extra_env=ledger_env).start()
    redis_server = RedisProcess().start()
    gateway = GatewayProcess(database_url, ledger_process.target, redis_server.url,
                             extra_args=["--workers", "12", "--auth-budget-ms", "3000", "--processes", "2",
                                         "--ledger-connections", "8"]).start()
    try:
        with LedgerClient(ledger_process.target, token=ADMIN_KEY) as ledger:
            ledger.create_asset(code="USD", scale=2, request_id="simulation-asset-USD")

        report = simulate(ledger_process.target, gateway, 500, cards=50, concurrency=32, seed=5)
        assert report.mismatches == [], report.mismatches[:10]
        assert gateway.process is not None
        kill_one_process_and_expect_the_unit_to_stop(gateway.process, 2)
    finally:
        gateway.stop()
        redis_server.kill()
        ledger_process.terminate()
    RUN_SUMMARY.append("card simulation, gateway and ledger as 2 processes each: "
                       + report.summary())
    assert_every_event_applied(database_url)
