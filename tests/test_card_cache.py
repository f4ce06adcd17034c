"""The gateway's card cache never decides with a card that changed, and never lets a copy through.

A real ledger, the real gateway process (with a private Redis for the spend limits) and direct SQL
for what another gateway replica or an operator would do. A change made "elsewhere" whose
notification has not arrived yet is simulated by bumping the card's version with its notifying
trigger off, in one transaction (nobody else ever sees the trigger off).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from ledger_cards.signatures import signed_headers
from ledger_client import LedgerClient, TransferState
from ledger_client.errors import NotFound
from ledger_server.server import LedgerServer
from tests.card_gateway import Processor, card_stack, now_rfc3339, open_cardholder, usd_ledger


@pytest.fixture(scope="module")
def ledger(ledger_server: LedgerServer) -> Iterator[LedgerClient]:
    with usd_ledger(ledger_server) as client:
        yield client


@pytest.fixture(scope="module")
def processor(ledger_server: LedgerServer, database_url: str, ledger: LedgerClient) -> Iterator[Processor]:
    with card_stack(ledger_server, database_url) as client:
        yield client


def cache_stats(processor: Processor) -> dict[str, int]:
    stats: dict[str, int] = processor.http.get("/healthz").json()["realtime_round_trips"]["card_cache"]
    return stats


def change_unheard(database_url: str, card_token: str, state: int) -> None:
    """Change a card as another replica would, its notification not yet arrived: the version moves,
    no gateway is told."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("ALTER TABLE cards DISABLE TRIGGER cards_version_and_notify")
        conn.execute("UPDATE cards SET state = %s, version = version + 1 WHERE token = %s", (state, card_token))
        conn.execute("ALTER TABLE cards ENABLE TRIGGER cards_version_and_notify")


def pending(ledger: LedgerClient, wallet: str) -> int:
    return ledger.get_account(account_id=wallet).debits_pending


def test_a_card_changed_unheard_is_decided_again_and_its_hold_voided(
    database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet, daily_limit=1_000)
    assert processor.authorize(card["card_token"], 100)["result"] == "APPROVED"  # the card is cached now
    hits = cache_stats(processor)["hits"]
    change_unheard(database_url, card["card_token"], state=2)  # frozen elsewhere

    answer = processor.authorize(card["card_token"], 600)
    assert (answer["result"], answer["decline_reason"]) == ("DECLINED", "CARD_FROZEN")
    assert cache_stats(processor)["hits"] == hits + 1  # decided with the cached card first
    hold = ledger.get_transfer(request_id=f"card:auth:{answer['token']}")  # placed with the stale card ...
    assert hold.state == TransferState.VOIDED  # ... and voided
    assert pending(ledger, wallet) == 100

    change_unheard(database_url, card["card_token"], state=1)  # active again
    assert processor.authorize(card["card_token"], 900)["result"] == "APPROVED"  # 600 was given back
    assert processor.authorize(card["card_token"], 1)["decline_reason"] == "SPEND_LIMIT_EXCEEDED"
    assert pending(ledger, wallet) == 1_000


def test_a_change_is_heard_and_the_next_authorization_sees_it(
    database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)
    assert processor.authorize(card["card_token"], 100)["result"] == "APPROVED"
    evictions = cache_stats(processor)["evictions"]
    with psycopg.connect(database_url, autocommit=True) as conn:  # another replica's freeze
        conn.execute("UPDATE cards SET state = 2 WHERE token = %s", (card["card_token"],))
    deadline = time.monotonic() + 10
    while cache_stats(processor)["evictions"] == evictions:
        assert time.monotonic() < deadline, "the change was not heard"
        time.sleep(0.01)
    answer = processor.authorize(card["card_token"], 100)
    assert answer["decline_reason"] == "CARD_FROZEN"
    with pytest.raises(NotFound):  # decided with the card as it is now: no hold tried
        ledger.get_transfer(request_id=f"card:auth:{answer['token']}")


def test_copies_of_a_request_for_a_cached_card_are_answered_once(ledger: LedgerClient, processor: Processor) -> None:
    """With the card cached, copies are caught when their answers are recorded: one 200, the rest 409,
    one hold; a copy sent after the answer is refused too and changes nothing."""
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    assert processor.authorize(card, 50)["result"] == "APPROVED"
    payload = {"token": "auth_" + uuid.uuid4().hex, "card_token": card, "amount": 700, "currency": "USD",
               "created": now_rfc3339()}
    body = json.dumps(payload).encode()
    headers = signed_headers(processor.gateway.secret, "msg_" + uuid.uuid4().hex, body)
    barrier = threading.Barrier(8)

    def send(_: int) -> int:
        with httpx.Client(base_url=processor.gateway.url, timeout=10) as http:
            barrier.wait(timeout=10)
            return http.post("/v1/authorizations", content=body, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(send, range(8)))
    assert statuses == [200] + [409] * 7
    assert pending(ledger, wallet) == 750
    again = processor.http.post("/v1/authorizations", content=body, headers=headers)
    assert (again.status_code, again.json()["error"]) == (409, "replayed")
    assert pending(ledger, wallet) == 750


def test_a_copy_is_refused_even_when_the_card_changed_since(
    database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    """The record finds the copy's message seen and its cached card out of date at once: a copy is
    refused (409), not decided again."""
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    assert processor.authorize(card, 50)["result"] == "APPROVED"  # cached
    payload = {"token": "auth_" + uuid.uuid4().hex, "card_token": card, "amount": 300, "currency": "USD",
               "created": now_rfc3339()}
    body = json.dumps(payload).encode()
    headers = signed_headers(processor.gateway.secret, "msg_" + uuid.uuid4().hex, body)
    assert processor.http.post("/v1/authorizations", content=body, headers=headers).status_code == 200
    change_unheard(database_url, card, state=1)  # a new version, same state: the cache is out of date
    again = processor.http.post("/v1/authorizations", content=body, headers=headers)
    assert (again.status_code, again.json()["error"]) == (409, "replayed")
    assert pending(ledger, wallet) == 350


def test_a_retry_after_a_decline_keeps_the_decline_and_holds_nothing(
    ledger: LedgerClient, processor: Processor
) -> None:
    """Declined while frozen; unfrozen; the processor retries the same authorization (a new message)
    with the card cached as active: the retry's hold is voided and the first answer stands."""
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet, daily_limit=1_000)
    assert processor.admin("POST", f"/v1/cards/{card['id']}/freeze").status_code == 200
    first = processor.authorize(card["card_token"], 800)
    assert first["decline_reason"] == "CARD_FROZEN"
    assert processor.admin("POST", f"/v1/cards/{card['id']}/unfreeze").status_code == 200
    assert processor.authorize(card["card_token"], 100)["result"] == "APPROVED"  # cached as active
    hits = cache_stats(processor)["hits"]

    retried = processor.authorize(card["card_token"], 800, token=first["token"])
    assert retried == first
    assert cache_stats(processor)["hits"] == hits + 1
    assert ledger.get_transfer(request_id=f"card:auth:{first['token']}").state == TransferState.VOIDED
    assert pending(ledger, wallet) == 100
    assert processor.authorize(card["card_token"], 900)["result"] == "APPROVED"  # the retry's 800 came back


def test_the_cache_is_off_while_not_listening_and_empty_when_back(
    database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    assert processor.authorize(card, 10)["result"] == "APPROVED"
    before = cache_stats(processor)
    assert before["listening"] == 1 and before["cards"] >= 1
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN card_changed'"
                     " AND datname = current_database()")
    deadline = time.monotonic() + 10
    while cache_stats(processor)["reconnects"] == before["reconnects"]:
        assert time.monotonic() < deadline, "the listener's loss was not noticed"
        time.sleep(0.01)
    while cache_stats(processor)["listening"] == 0:
        assert time.monotonic() < deadline, "the listener did not come back"
        time.sleep(0.01)
    assert cache_stats(processor)["cards"] == 0  # changes made meanwhile were not heard: nothing kept
    assert processor.authorize(card, 10)["result"] == "APPROVED"
    assert pending(ledger, wallet) == 20
