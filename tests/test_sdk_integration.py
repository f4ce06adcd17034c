"""The SDK against a real ledger whose network is cut mid-call: the transfer exists exactly once.

A loopback TCP proxy (tests/tcp_proxy.py) sits between the SDK and a real server and cuts the
connection at a precise moment: after the server answered (the commit happened, the answer is
lost), or before the request reached it. In the last test the server process itself is killed
with SIGKILL while the answer is in flight, and restarted on the same port and database.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import grpc
import psycopg
import pytest

from ledger_client import AsyncLedgerClient, LedgerClient, RetryNotice, RetryPolicy, Transfer
from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY, ServerProcess
from tests.tcp_proxy import TcpProxy

QUICK = RetryPolicy(max_attempts=10, initial_backoff_s=0.05, max_backoff_s=0.5, attempt_timeout_s=5.0)


@pytest.fixture
def proxy(ledger_server: LedgerServer) -> Iterator[TcpProxy]:
    relay = TcpProxy(ledger_server.port)
    yield relay
    relay.close()


def open_accounts(client: LedgerClient) -> tuple[str, str, str]:
    code = "N" + uuid.uuid4().hex[:10].upper()
    client.create_asset(code=code, scale=2)
    debit = client.create_account(asset=code).id
    credit = client.create_account(asset=code, debits_must_not_exceed_credits=True).id
    return code, debit, credit


def transfers_from(database_url: str, account_id: str) -> list[tuple[str, str]]:
    """(id, request_id) of every transfer debiting the account, straight from the database."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id::text, request_id FROM transfers WHERE debit_account_id = %s", (account_id,)
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def assert_exactly_once(
    database_url: str, client: LedgerClient, debit: str, result: Transfer, amount: int
) -> None:
    assert transfers_from(database_url, debit) == [(result.id, result.request_id)]
    account = client.get_account(account_id=debit)
    assert (account.debits_posted, account.version) == (amount, 1)
    assert client.get_transfer(request_id=result.request_id).id == result.id


def test_an_answer_lost_after_commit_is_retried_and_the_transfer_exists_once(
    ledger_server: LedgerServer, proxy: TcpProxy, database_url: str
) -> None:
    notices: list[RetryNotice] = []
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as direct, \
            LedgerClient(proxy.target, token=ADMIN_KEY, retry=QUICK, on_retry=notices.append) as client:
        asset, debit, credit = open_accounts(direct)
        client.get_account(account_id=debit)  # the connection through the proxy is up
        proxy.cut_after_response()
        result = client.create_transfer(
            debit_account_id=debit, credit_account_id=credit, amount=1250, asset=asset
        )
        assert proxy.events.cuts_after_response == 1, proxy.events.log
        assert notices and notices[0].code == grpc.StatusCode.UNAVAILABLE
        assert {n.request_id for n in notices} == {result.request_id}
        assert_exactly_once(database_url, direct, debit, result, 1250)


def test_a_request_cut_before_the_server_saw_it_is_retried_and_executes_once(
    ledger_server: LedgerServer, proxy: TcpProxy, database_url: str
) -> None:
    notices: list[RetryNotice] = []
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as direct, \
            LedgerClient(proxy.target, token=ADMIN_KEY, retry=QUICK, on_retry=notices.append) as client:
        asset, debit, credit = open_accounts(direct)
        proxy.cut_before_request()
        result = client.create_transfer(
            debit_account_id=debit, credit_account_id=credit, amount=700, asset=asset
        )
        assert proxy.events.cuts_before_request == 1 and len(notices) >= 1
        assert_exactly_once(database_url, direct, debit, result, 700)


def test_the_async_client_survives_a_lost_answer_too(
    ledger_server: LedgerServer, proxy: TcpProxy, database_url: str
) -> None:
    notices: list[RetryNotice] = []
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as direct:
        asset, debit, credit = open_accounts(direct)

        async def scenario() -> Transfer:
            async with AsyncLedgerClient(proxy.target, token=ADMIN_KEY, retry=QUICK, on_retry=notices.append) as client:
                await client.get_account(account_id=debit)
                proxy.cut_after_response()
                return await client.create_transfer(
                    debit_account_id=debit, credit_account_id=credit, amount="3.10", asset=asset
                )

        result = asyncio.run(scenario())
        assert proxy.events.cuts_after_response == 1 and notices
        assert_exactly_once(database_url, direct, debit, result, 310)


def test_a_server_killed_while_answering_and_restarted_still_moves_money_once(
    server_process: Callable[..., ServerProcess], database_url: str
) -> None:
    first = server_process().start()
    relay = TcpProxy(first.port)
    patient = RetryPolicy(max_attempts=60, initial_backoff_s=0.1, max_backoff_s=0.5, attempt_timeout_s=5.0)
    notices: list[RetryNotice] = []
    outcome: dict[str, Transfer | BaseException] = {}
    try:
        with LedgerClient(first.target, token=ADMIN_KEY) as direct, LedgerClient(
            relay.target, token=ADMIN_KEY, retry=patient, timeout=90, on_retry=notices.append
        ) as client:
            asset, debit, credit = open_accounts(direct)
            client.get_account(account_id=debit)
            relay.hold_responses()

            def call() -> None:
                try:
                    outcome["result"] = client.create_transfer(
                        debit_account_id=debit, credit_account_id=credit, amount=4200, asset=asset
                    )
                except BaseException as error:  # reported by the assertion below
                    outcome["result"] = error

            worker = threading.Thread(target=call)
            worker.start()
            wait_for(lambda: "holding a response" in relay.events.log, "the server never answered")
            first.kill()  # SIGKILL with the committed answer still in flight
            wait_for(lambda: "dropped a held response" in relay.events.log, "the proxy kept the connection")
            relay.release()
            server_process(port=first.port).start()  # same port, same database
            worker.join(timeout=90)
            assert not worker.is_alive()
            result = outcome["result"]
            assert isinstance(result, Transfer), result
            assert notices and {n.request_id for n in notices} == {result.request_id}
            with LedgerClient(first.target, token=ADMIN_KEY) as fresh:
                assert_exactly_once(database_url, fresh, debit, result, 4200)
    finally:
        relay.close()


def wait_for(condition: Callable[[], bool], message: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)
