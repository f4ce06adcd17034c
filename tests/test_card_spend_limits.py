"""Per-card spend limits under concurrency, with Redis up, down, and back with stale counters.

A real ledger, the real gateway process and a private Redis that the test pauses (SIGSTOP: calls
time out, the keys survive) and resumes. Twenty authorizations of one card race each time.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger_client import LedgerClient
from ledger_server.server import LedgerServer
from tests.card_gateway import GatewayProcess, Processor, open_cardholder
from tests.conftest import ADMIN_KEY, RUN_SUMMARY
from tests.invariants import assert_ledger_consistent
from tests.redis_process import RedisProcess

ASSET = "USD"
RACERS = 20


@pytest.fixture(scope="module")
def ledger(ledger_server: LedgerServer) -> Iterator[LedgerClient]:
    with LedgerClient(ledger_server.target, token=ADMIN_KEY) as client:
        client.create_asset(code=ASSET, scale=2, request_id="test-asset-USD")
        yield client


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    assert server.process is not None
    server.process.send_signal(signal.SIGCONT)
    server.kill()


@pytest.fixture(scope="module")
def processor(ledger_server: LedgerServer, database_url: str, ledger: LedgerClient,
              redis_server: RedisProcess) -> Iterator[Processor]:
    gateway = GatewayProcess(database_url, ledger_server.target, redis_server.url).start()
    client = Processor(gateway)
    yield client
    client.close()
    gateway.stop()
    assert_ledger_consistent(database_url)


def race(processor: Processor, card_token: str, amount: int) -> list[dict[str, object]]:
    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(lambda _: processor.authorize(card_token, amount, token="auth_" + uuid.uuid4().hex),
                             range(RACERS)))


def approved(answers: list[dict[str, object]]) -> int:
    return sum(int(a["approved_amount"]) for a in answers if a["result"] != "DECLINED")  # type: ignore[call-overload]


def test_concurrent_authorizations_never_pass_a_daily_limit_with_redis_up_down_and_back(
    processor: Processor, ledger: LedgerClient, redis_server: RedisProcess
) -> None:
    assert redis_server.process is not None
    wallet = open_cardholder(ledger, ASSET, 100_000)
    card = processor.issue_card(wallet, daily_limit=1000)
    token = card["card_token"]

    up = race(processor, token, 100)  # Redis counters
    spent = approved(up)
    assert spent == 1000, up  # 20 x 100 asked, exactly the limit approved

    spare_wallet = open_cardholder(ledger, ASSET, 100_000)
    spare = processor.issue_card(spare_wallet, daily_limit=500)["card_token"]
    first = processor.authorize(spare, 100)  # Redis counts 100 for the spare card, then Redis hangs
    assert first["result"] == "APPROVED"
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        down = race(processor, spare, 100)  # decided from the database, reserved under the card's lock
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert approved(down) == 400, down  # exactly the room left: no two squeezed under the limit
    back = processor.authorize(spare, 100)  # Redis' counter says 100: it must be rebuilt, not trusted
    assert back["result"] == "DECLINED" and back["decline_reason"] == "SPEND_LIMIT_EXCEEDED", back
    held = ledger.get_account(account_id=spare_wallet).debits_pending
    assert held == 500, held
    RUN_SUMMARY.append(f"card spend limit races: redis_up={spent}/1000 redis_down={approved(down) + 100}/500 "
                       f"after_recovery_declined={back['result'] == 'DECLINED'} held={held}")


def test_copies_of_one_authorization_count_once_against_the_limit_with_redis_up_and_down(
    processor: Processor, ledger: LedgerClient, redis_server: RedisProcess
) -> None:
    """The processor may send one authorization twice at once, or retry it before its first answer is
    recorded: every copy gets the same answer, the ledger holds once, and the limit counts it once."""
    assert redis_server.process is not None

    def copies(card_token: str, amount: int) -> list[dict[str, object]]:
        token = "auth_" + uuid.uuid4().hex
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: processor.authorize(card_token, amount, token=token), range(8)))

    for paused in (False, True):  # Redis counters, then the database under the card's lock
        wallet = open_cardholder(ledger, ASSET, 100_000)
        card = processor.issue_card(wallet, daily_limit=1000)["card_token"]
        if paused:
            redis_server.process.send_signal(signal.SIGSTOP)
        try:
            answers = copies(card, 600)
            rest = processor.authorize(card, 400)  # counted once, 600 of 1,000 is spent: 400 fits
            over = processor.authorize(card, 1)
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        assert {(a["result"], a["approved_amount"]) for a in answers} == {("APPROVED", 600)}, (paused, answers)
        assert (rest["result"], rest["approved_amount"]) == ("APPROVED", 400), (paused, rest)
        assert (over["result"], over["decline_reason"]) == ("DECLINED", "SPEND_LIMIT_EXCEEDED"), (paused, over)
        assert ledger.get_account(account_id=wallet).debits_pending == 1000


def test_a_declined_hold_gives_its_reservation_back_once_however_many_copies(
    processor: Processor, ledger: LedgerClient
) -> None:
    """The ledger refuses the hold (insufficient funds): the limit gets the reservation back. Eight
    copies of that authorization at once give it back once: more would leave the counter below what
    was spent, and the limit would let more through than it allows."""
    wallet = open_cardholder(ledger, ASSET, 300)
    card = processor.issue_card(wallet, daily_limit=1000)["card_token"]
    token = "auth_" + uuid.uuid4().hex
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: processor.authorize(card, 800, token=token), range(8)))
    assert {(a["result"], a["decline_reason"]) for a in answers} == {("DECLINED", "INSUFFICIENT_FUNDS")}, answers
    funding = ledger.create_account(asset=ASSET).id
    ledger.create_transfer(debit_account_id=funding, credit_account_id=wallet, amount=10_000, asset=ASSET)
    full = processor.authorize(card, 1000)  # the whole limit is back: the declined 800 counts nothing
    assert (full["result"], full["approved_amount"]) == ("APPROVED", 1000), full
    over = processor.authorize(card, 1)  # and no more than that: it was given back once
    assert (over["result"], over["decline_reason"]) == ("DECLINED", "SPEND_LIMIT_EXCEEDED"), over
    assert ledger.get_account(account_id=wallet).debits_pending == 1000
