"""Forged, stale and replayed processor requests are refused and change nothing; a decision that
misses its budget answers the configured default and a late hold is voided (no money stuck)."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from ledger_cards.signatures import new_secret, signed_headers
from ledger_client import LedgerClient, TransferState
from ledger_server.server import LedgerServer
from tests.card_gateway import GatewayProcess, Processor, card_stack, event, now_rfc3339, open_cardholder, usd_ledger
from tests.tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def ledger(ledger_server: LedgerServer) -> Iterator[LedgerClient]:
    with usd_ledger(ledger_server) as client:
        yield client


@pytest.fixture(scope="module")
def processor(ledger_server: LedgerServer, database_url: str, ledger: LedgerClient) -> Iterator[Processor]:
    with card_stack(ledger_server, database_url) as client:
        yield client


def _stored_events(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM card_events").fetchone()
    assert row is not None
    return int(row[0])


def test_forged_stale_tampered_and_replayed_webhooks_are_refused(
    ledger: LedgerClient, processor: Processor, database_url: str
) -> None:
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    token = processor.authorize(card, 1000)["token"]
    clearing = {"events": [event("clearing", token, card, 1000, final=True)]}
    body = json.dumps(clearing).encode()
    before = _stored_events(database_url), ledger.get_account(account_id=wallet)

    def post(headers: dict[str, str], content: bytes = body) -> tuple[int, str]:
        response = processor.http.post("/v1/events", content=content, headers=headers)
        return response.status_code, response.json()["error"]

    forged = signed_headers(new_secret(), "msg_forged", body)
    assert post(forged) == (401, "bad_signature")
    stale = signed_headers(processor.gateway.secret, "msg_stale", body, int(time.time()) - 600)
    assert post(stale) == (401, "stale")
    future = signed_headers(processor.gateway.secret, "msg_future", body, int(time.time()) + 600)
    assert post(future) == (401, "stale")
    genuine = signed_headers(processor.gateway.secret, "msg_genuine", body)
    tampered = body.replace(b'"amount": 1000', b'"amount": 9000')
    assert tampered != body
    assert post(genuine, tampered) == (401, "bad_signature")
    assert post({"content-type": "application/json"}) == (401, "missing_headers")
    assert post({**genuine, "webhook-signature": "v1,AAAA"}) == (401, "bad_signature")
    assert (_stored_events(database_url), ledger.get_account(account_id=wallet)) == before

    assert processor.http.post("/v1/events", content=body, headers=genuine).status_code == 200
    processor.wait_applied()
    after = ledger.get_account(account_id=wallet)
    assert after.debits_posted == 1000
    assert post(genuine) == (409, "replayed")  # the same signed bytes again
    # A processor retry: the same webhook-id with the timestamp of the new attempt.
    retry = signed_headers(processor.gateway.secret, "msg_genuine", body, int(genuine["webhook-timestamp"]) + 1)
    response = processor.http.post("/v1/events", content=body, headers=retry)
    assert response.json() == {"accepted": 0, "duplicates": 1, "conflicts": []}
    processor.wait_applied()
    assert ledger.get_account(account_id=wallet) == after


def _signed_authorization(
    ledger: LedgerClient, processor: Processor, amount: int
) -> tuple[str, str, str, bytes, dict[str, str]]:
    """A funded card's authorization, signed once: (wallet, card token, authorization token, body,
    headers), for sending the very same bytes more than once."""
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    token = "auth_" + uuid.uuid4().hex
    payload = {"token": token, "card_token": card, "amount": amount, "currency": "USD", "created": now_rfc3339()}
    body = json.dumps(payload).encode()
    return wallet, card, token, body, signed_headers(processor.gateway.secret, "msg_" + uuid.uuid4().hex, body)


def test_the_same_signed_request_sent_at_once_is_answered_once(ledger: LedgerClient, processor: Processor) -> None:
    """Replay checks of concurrent authorizations share one statement with their card lookups:
    copies inside one batch must still be caught, all but the first."""
    wallet, _, _, body, headers = _signed_authorization(ledger, processor, 700)
    barrier = threading.Barrier(8)

    def send(_: int) -> int:
        with httpx.Client(base_url=processor.gateway.url, timeout=10) as http:
            barrier.wait(timeout=10)
            return http.post("/v1/authorizations", content=body, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(send, range(8)))
    assert statuses == [200] + [409] * 7
    assert ledger.get_account(account_id=wallet).debits_pending == 700


def test_a_replay_is_refused_by_another_replica_and_after_a_restart_without_redis(
    ledger_server: LedgerServer, database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    """The record of received messages is in PostgreSQL (card_seen_messages), shared by every
    gateway replica and kept across restarts: no Redis is needed to refuse a replay."""
    wallet, card, token, body, headers = _signed_authorization(ledger, processor, 300)
    clearing = json.dumps({"events": [event("clearing", token, card, 300, final=True)]}).encode()
    clearing_headers = signed_headers(processor.gateway.secret, "msg_" + uuid.uuid4().hex, clearing)
    assert processor.http.post("/v1/authorizations", content=body, headers=headers).status_code == 200
    assert processor.http.post("/v1/events", content=clearing, headers=clearing_headers).status_code == 200
    processor.wait_applied()
    settled = ledger.get_account(account_id=wallet)
    assert (settled.debits_pending, settled.debits_posted) == (0, 300)
    for _ in range(2):  # a second replica without Redis; then the same one restarted
        replica = GatewayProcess(database_url, ledger_server.target, secret=processor.gateway.secret).start()
        try:
            with httpx.Client(base_url=replica.url, timeout=10) as http:
                again = http.post("/v1/authorizations", content=body, headers=headers)
                assert (again.status_code, again.json()["error"]) == (409, "replayed")
                again = http.post("/v1/events", content=clearing, headers=clearing_headers)
                assert (again.status_code, again.json()["error"]) == (409, "replayed")
        finally:
            replica.stop()
    assert ledger.get_account(account_id=wallet) == settled


def test_a_long_message_id_is_checked_for_replay_like_any_other(ledger: LedgerClient, processor: Processor) -> None:
    """Replay records keep a digest of the message id: a 4,000-character id (the header bound) is
    stored like a short one and cannot fail the statement its batch neighbours share."""
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    payload = {"token": "auth_" + uuid.uuid4().hex, "card_token": card, "amount": 250, "currency": "USD",
               "created": now_rfc3339()}
    body = json.dumps(payload).encode()
    long_id = secrets.token_urlsafe(3000)[:4000]  # random: PostgreSQL cannot compress it under its index bound
    headers = signed_headers(processor.gateway.secret, long_id, body)
    with ThreadPoolExecutor(4) as pool:  # three neighbours in flight with it
        neighbours = [pool.submit(processor.authorize, card, 100) for _ in range(3)]
        first = processor.http.post("/v1/authorizations", content=body, headers=headers)
        assert all(n.result(timeout=20)["result"] == "APPROVED" for n in neighbours)
    assert (first.status_code, first.json()["result"]) == (200, "APPROVED")
    again = processor.http.post("/v1/authorizations", content=body, headers=headers)
    assert (again.status_code, again.json()["error"]) == (409, "replayed")
    assert ledger.get_account(account_id=wallet).debits_pending == 550


def test_expired_replay_records_are_deleted_and_live_ones_kept(
    ledger_server: LedgerServer, database_url: str, processor: Processor
) -> None:
    """card_seen_messages stays bounded: a gateway deletes rows past their window when it starts and
    once a minute after, and keeps the rest."""
    expired, live = "msg_expired_" + uuid.uuid4().hex, "msg_live_" + uuid.uuid4().hex
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO card_seen_messages VALUES (%s, now() - interval '1 second'), "
                     "(%s, now() + interval '10 minutes')", (expired, live))
    replica = GatewayProcess(database_url, ledger_server.target, secret=processor.gateway.secret).start()
    try:
        deadline = time.monotonic() + 10
        while True:
            with psycopg.connect(database_url) as conn:
                rows = conn.execute("SELECT message_key FROM card_seen_messages WHERE message_key IN (%s, %s)",
                                    (expired, live)).fetchall()
            if rows == [(live,)] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert rows == [(live,)]
    finally:
        replica.stop()


def test_forged_and_malformed_authorizations_hold_nothing(ledger: LedgerClient, processor: Processor) -> None:
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    payload = {"token": "auth_" + uuid.uuid4().hex, "card_token": card, "amount": 500, "currency": "USD",
               "created": now_rfc3339()}
    forged = processor.signed_post("/v1/authorizations", payload, secret=new_secret())
    assert forged.status_code == 401
    for bad in ({**payload, "amount": 5.5}, {**payload, "amount": -1}, {**payload, "token": "has space"},
                {**payload, "created": "yesterday"}):
        response = processor.signed_post("/v1/authorizations", bad)
        assert response.status_code == 400, bad
    events = processor.signed_post("/v1/events", {"events": [{"type": "clearing"}]})
    assert events.status_code == 400
    account = ledger.get_account(account_id=wallet)
    assert (account.debits_pending, account.debits_posted) == (0, 0)


def test_a_timed_out_decision_answers_the_default_and_the_late_hold_is_voided(
    ledger_server: LedgerServer, database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    proxy = TcpProxy(ledger_server.port)
    slow = GatewayProcess(database_url, proxy.target, extra_args=["--auth-budget-ms", "200"],
                          secret=processor.gateway.secret).start()
    client = Processor(slow)
    try:
        wallet = open_cardholder(ledger, "USD", 10_000)
        card = client.issue_card(wallet)["card_token"]
        assert client.authorize(card, 100)["result"] == "APPROVED"  # warm: program accounts, channel
        proxy.hold_responses()  # the ledger commits the hold, its answer is late
        answer = client.authorize(card, 700)
        assert (answer["result"], answer["decline_reason"]) == ("DECLINED", "TIMEOUT")
        time.sleep(0.5)
        proxy.release()
        hold_request = f"card:auth:{answer['token']}"
        deadline = time.monotonic() + 15
        while ledger.get_transfer(request_id=hold_request).state != TransferState.VOIDED:
            assert time.monotonic() < deadline, "the late hold was not voided"
            time.sleep(0.05)
        account = ledger.get_account(account_id=wallet)
        assert (account.debits_pending, account.available_balance) == (100, 9_900)
        # The processor's own record of the decline changes nothing more.
        client.send(event("authorization", answer["token"], card, 700, status="DECLINED"))
        client.wait_applied()
        assert ledger.get_account(account_id=wallet).debits_pending == 100
    finally:
        proxy.release()
        client.close()
        slow.stop()
        proxy.close()


ROUNDS, EVENTS = 30, 100  # EVENTS_PER_DELIVERY_MAX


def test_copies_of_a_delivery_sent_at_once_in_other_orders_are_both_acknowledged(
    database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    """A processor resending a batch while the first copy is still being stored, its events in
    another order: both copies are acknowledged (no deadlock between the two inbox writes) and each
    event is stored once."""
    wallet = open_cardholder(ledger, "USD", 10_000)
    card = processor.issue_card(wallet)["card_token"]
    before = _stored_events(database_url)
    for _ in range(ROUNDS):
        events = [event("balance_inquiry", "txn_" + uuid.uuid4().hex, card) for _ in range(EVENTS)]
        barrier = threading.Barrier(2)
        copies = [(events, barrier), (events[::-1], barrier)]

        def deliver(copy: tuple[list[dict[str, object]], threading.Barrier]) -> int:
            batch, barrier = copy
            sender = Processor(processor.gateway)
            try:
                barrier.wait(timeout=10)
                return sender.signed_post("/v1/events", {"events": batch}).status_code
            finally:
                sender.close()

        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(deliver, copies)) == [200, 200]
    assert _stored_events(database_url) - before == ROUNDS * EVENTS
