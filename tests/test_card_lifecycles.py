"""Every card lifecycle, from the raw signed webhook to the ledger balances.

A real ledger server, the real gateway process (`ledger-card-gateway serve`), a private Redis; the
test plays the processor: it signs requests, asks for authorizations and delivers events.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from ledger_client import LedgerClient, TransferKind, TransferState
from ledger_server.server import LedgerServer
from tests.card_gateway import GatewayProcess, Processor, card_stack, event, open_cardholder, usd_ledger
from tests.conftest import ADMIN_KEY

ASSET = "USD"


@pytest.fixture(scope="module")
def ledger(ledger_server: LedgerServer) -> Iterator[LedgerClient]:
    with usd_ledger(ledger_server) as client:
        yield client


@pytest.fixture(scope="module")
def processor(ledger_server: LedgerServer, database_url: str, ledger: LedgerClient) -> Iterator[Processor]:
    with card_stack(ledger_server, database_url, extra_args=["--hold-timeout-seconds", "3600"]) as client:
        yield client


def program(ledger: LedgerClient) -> dict[str, str]:
    accounts = ledger.list_accounts(asset=ASSET, page_size=1000).items
    found = {a.metadata["card_program"]: a.id for a in accounts if "card_program" in a.metadata}
    assert len(found) == 5, found
    return found


def balances(ledger: LedgerClient, account_id: str) -> tuple[int, int, int, int]:
    """(debits_pending, debits_posted, credits_pending, credits_posted)."""
    a = ledger.get_account(account_id=account_id)
    return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted


class Card:
    """A funded cardholder with one card, and the program's accounts before the test moved money."""

    def __init__(self, ledger: LedgerClient, processor: Processor, funds: int = 10_000, **controls: object) -> None:
        self.ledger = ledger
        self.wallet = open_cardholder(ledger, ASSET, funds)
        self.card = processor.issue_card(self.wallet, **controls)
        self.token: str = self.card["card_token"]
        self.program = program(ledger)
        self.start = {role: balances(ledger, account) for role, account in self.program.items()}

    def wallet_balances(self) -> tuple[int, int, int, int]:
        return balances(self.ledger, self.wallet)

    def available(self) -> int:
        return self.ledger.get_account(account_id=self.wallet).available_balance

    def moved(self, role: str) -> tuple[int, ...]:
        """How the role's counters moved since this card was set up."""
        now = balances(self.ledger, self.program[role])
        return tuple(b - a for a, b in zip(self.start[role], now, strict=True))


def test_authorization_then_final_clearing_posts_the_hold_with_fees(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    answer = processor.authorize(card.token, 2500)
    assert answer["result"] == "APPROVED" and answer["approved_amount"] == 2500
    assert card.wallet_balances() == (2500, 0, 0, 10_000)
    processor.send(event("authorization", answer["token"], card.token, 2500, status="APPROVED"))
    processor.send(event("clearing", answer["token"], card.token, 2500, final=True, interchange=30, network_fee=5))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 2500, 0, 10_000)
    assert card.moved("merchant_settlement") == (0, 0, 0, 2500)
    assert card.moved("fee_revenue") == (0, 0, 0, 30)
    assert card.moved("processor_receivable") == (0, 30, 0, 5)
    assert card.moved("network_fees") == (0, 5, 0, 0)
    hold = ledger.get_transfer(transfer_id=answer["hold_id"])
    assert hold.state == TransferState.POSTED
    assert hold.request_id == f"card:auth:{answer['token']}"


def test_insufficient_funds_declines_or_partially_approves(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor, funds=1000)
    declined = processor.authorize(card.token, 1500)
    assert (declined["result"], declined["decline_reason"]) == ("DECLINED", "INSUFFICIENT_FUNDS")
    partial = processor.authorize(card.token, 1500, partial=True)
    assert (partial["result"], partial["approved_amount"]) == ("PARTIALLY_APPROVED", 1000)
    assert card.available() == 0
    again = processor.authorize(card.token, 1500, token=partial["token"], partial=True)
    assert again == partial  # a retried request gets the same answer and holds nothing more
    assert card.wallet_balances() == (1000, 0, 0, 1000)


def test_concurrent_authorizations_share_round_trips_and_each_gets_its_own_answer(
    ledger: LedgerClient, processor: Processor
) -> None:
    """The real-time path batches the lookups (of cards not cached), holds and records of concurrent
    authorizations; no
    answer may leak into a neighbour's: approvals, declines of several kinds and one authorization
    retried eight times at once, all in flight together."""
    rich, poor = Card(ledger, processor, funds=1_000_000), Card(ledger, processor, funds=1_000)
    frozen = Card(ledger, processor)
    assert processor.admin("POST", f"/v1/cards/{frozen.card['id']}/freeze").status_code == 200
    retried = "auth_" + uuid.uuid4().hex
    asks = ([(rich.token, 100 + i, None) for i in range(30)] + [(poor.token, 400, None)] * 5
            + [(frozen.token, 100, None)] * 5 + [("card_" + uuid.uuid4().hex, 100, None)] * 3
            + [(rich.token, 777, retried)] * 8)
    random.Random(7).shuffle(asks)
    barrier = threading.Barrier(len(asks))
    before = processor.http.get("/healthz").json()["realtime_round_trips"]

    def ask(card_token: str, amount: int, token: str | None) -> dict[str, Any]:
        client = Processor(processor.gateway)
        try:
            barrier.wait(timeout=30)
            return client.authorize(card_token, amount, token=token)
        finally:
            client.close()

    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda a: ask(*a), asks))
    by_card: dict[str, list[dict[str, Any]]] = {}
    for (card_token, amount, token), answer in zip(asks, answers, strict=True):
        if token is None:
            assert answer["token"] != retried
        by_card.setdefault("retried" if token else card_token, []).append({**answer, "asked": amount})
    assert all(a["result"] == "APPROVED" and a["approved_amount"] == a["asked"] for a in by_card[rich.token])
    assert sorted(a["result"] for a in by_card[poor.token]) == ["APPROVED"] * 2 + ["DECLINED"] * 3
    assert {a["decline_reason"] for a in by_card[poor.token] if a["result"] == "DECLINED"} == {"INSUFFICIENT_FUNDS"}
    assert {a["decline_reason"] for a in by_card[frozen.token]} == {"CARD_FROZEN"}
    unknown = [a for key, group in by_card.items() if key not in (rich.token, poor.token, frozen.token, "retried")
               for a in group]
    assert len(unknown) == 3 and {a["decline_reason"] for a in unknown} == {"CARD_NOT_FOUND"}
    once = {(a["result"], a["approved_amount"], a["hold_id"]) for a in by_card["retried"]}
    assert len(once) == 1 and next(iter(once))[:2] == ("APPROVED", 777)  # one hold, one answer
    rich_held = sum(100 + i for i in range(30)) + 777
    assert rich.wallet_balances() == (rich_held, 0, 0, 1_000_000)
    assert poor.wallet_balances() == (800, 0, 0, 1_000)
    assert frozen.wallet_balances() == (0, 0, 0, 10_000)
    after = processor.http.get("/healthz").json()["realtime_round_trips"]
    lookups, records = ({k: after[kind][k] - before[kind][k] for k in ("sends", "items")}
                        for kind in ("lookups", "records"))
    hits = after["card_cache"]["hits"] - before["card_cache"]["hits"]
    assert lookups["items"] + hits == len(asks) and lookups["sends"] <= lookups["items"], (lookups, hits)
    assert records["sends"] < records["items"] <= len(asks) - 3, records  # shared round trips


def test_a_row_locked_by_a_webhook_worker_delays_only_its_own_answer(
    ledger: LedgerClient, processor: Processor, database_url: str
) -> None:
    """A webhook worker creating a transaction holds its row until its ledger calls return. The
    real-time answer for that transaction must wait for it; the answers recorded in the same batch
    and after it must not."""
    card = Card(ledger, processor, funds=100_000)
    blocked = "auth_" + uuid.uuid4().hex
    with psycopg.connect(database_url) as worker:  # what the applier's first insert does, left open
        worker.execute(
            "INSERT INTO card_transactions (token, card_id, account_id, asset) VALUES (%s, %s, %s, %s)",
            (blocked, card.card["id"], card.wallet, ASSET))
        with ThreadPoolExecutor(12) as pool:
            waiting = pool.submit(processor.authorize, card.token, 300, blocked)
            time.sleep(0.2)
            others = [pool.submit(processor.authorize, card.token, 100 + i) for i in range(10)]
            answers = [other.result(timeout=20) for other in others]
            assert all(a["result"] == "APPROVED" for a in answers)
            assert not waiting.done()  # its row is still locked
            worker.rollback()  # the worker gives up the row (a crash, say): the answer is recorded
            answer = waiting.result(timeout=20)
    assert (answer["result"], answer["approved_amount"]) == ("APPROVED", 300)
    assert card.wallet_balances() == (300 + sum(100 + i for i in range(10)), 0, 0, 100_000)
    # The wait shows in the gateway's log, and where it was (this one, or another slower than 100 ms).
    assert re.search(r"slow answer to authorization \S+: \d+ ms \(deciding \d+ ms.*, recording \d+ ms\)",
                     processor.gateway.log())


def test_authorization_endpoint_refuses_oversized_bodies_and_other_methods(processor: Processor) -> None:
    big = processor.signed_post("/v1/authorizations", {"padding": "x" * (1 << 20)})
    assert big.status_code == 413 and big.json()["error"] == "invalid_request"
    wrong = processor.http.get("/v1/authorizations")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"


def test_card_controls_freeze_mcc_limits_and_close(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor, daily_limit=3000, blocked_mccs=["7995"])
    card_id = card.card["id"]
    assert card.card["tenant"] == "acme"  # from the cardholder account's metadata
    assert processor.admin("POST", f"/v1/cards/{card_id}/freeze").json()["state"] == "FROZEN"
    assert processor.authorize(card.token, 100)["decline_reason"] == "CARD_FROZEN"
    assert processor.admin("POST", f"/v1/cards/{card_id}/unfreeze").json()["state"] == "ACTIVE"
    assert processor.authorize(card.token, 100, mcc="7995")["decline_reason"] == "MCC_BLOCKED"
    assert processor.authorize(card.token, 2000)["result"] == "APPROVED"
    assert processor.authorize(card.token, 1500)["decline_reason"] == "SPEND_LIMIT_EXCEEDED"
    partial = processor.authorize(card.token, 1500, partial=True)
    assert (partial["result"], partial["approved_amount"]) == ("PARTIALLY_APPROVED", 1000)
    assert processor.authorize(card.token, 1, currency="EUR")["decline_reason"] == "CURRENCY_MISMATCH"
    raised = processor.admin("PUT", f"/v1/cards/{card_id}/controls", {"daily_limit": 5000, "blocked_mccs": []})
    assert raised.json()["daily_limit"] == 5000
    assert processor.authorize(card.token, 1500, mcc="7995")["result"] == "APPROVED"
    assert processor.admin("POST", f"/v1/cards/{card_id}/close").json()["state"] == "CLOSED"
    assert processor.admin("POST", f"/v1/cards/{card_id}/unfreeze").status_code == 409
    assert processor.authorize(card.token, 100)["decline_reason"] == "CARD_CLOSED"
    assert processor.admin("GET", f"/v1/cards/{card_id}").json()["state"] == "CLOSED"
    assert processor.http.post("/v1/cards", json={}).status_code == 401  # admin key required
    assert card.wallet_balances() == (4500, 0, 0, 10_000)


def test_incremental_authorization_and_advice_adjust_the_hold(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    auth = processor.authorize(card.token, 4000, mcc="7011")  # a hotel
    token = auth["token"]
    processor.send(event("authorization.incremental", token, card.token, 1500, offset_s=1, authorized_amount=5500))
    processor.wait_applied()
    assert card.wallet_balances() == (5500, 0, 0, 10_000)
    processor.send(event("authorization.advice", token, card.token, 0, offset_s=2, authorized_amount=5000))
    processor.wait_applied()
    assert card.wallet_balances() == (5000, 0, 0, 10_000)
    kinds = [e.kind for e in ledger.iter_account_entries(account_id=card.wallet)]
    assert kinds[-2:] == [TransferKind.INCREASE_PENDING, TransferKind.DECREASE_PENDING]
    processor.send(event("clearing", token, card.token, 5000, offset_s=3, final=True))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 5000, 0, 10_000)


def test_multiple_clearings_keep_the_rest_on_hold_until_the_final_one(
    ledger: LedgerClient, processor: Processor
) -> None:
    card = Card(ledger, processor)
    token = processor.authorize(card.token, 3000)["token"]
    processor.send(event("clearing", token, card.token, 1000, offset_s=1, final=False, interchange=10))
    processor.wait_applied()
    assert card.wallet_balances() == (2000, 1000, 0, 10_000)
    processor.send(event("clearing", token, card.token, 800, offset_s=2, final=False, interchange=8))
    processor.wait_applied()
    assert card.wallet_balances() == (1200, 1800, 0, 10_000)
    processor.send(event("clearing", token, card.token, 700, offset_s=3, final=True, interchange=7))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 2500, 0, 10_000)  # the unused 500 is released
    assert card.moved("merchant_settlement") == (0, 0, 0, 2500)
    assert card.moved("fee_revenue") == (0, 0, 0, 25)


def test_over_capture_within_and_beyond_tolerance_always_posts(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    tip = processor.authorize(card.token, 1000, mcc="5812")["token"]
    processor.send(event("clearing", tip, card.token, 1180, offset_s=1, final=True))  # an 18% tip
    fuel = processor.authorize(card.token, 100, mcc="5542")["token"]
    processor.send(event("clearing", fuel, card.token, 6000, offset_s=1, final=True))  # far past 20%
    processor.wait_applied()
    assert card.wallet_balances() == (0, 7180, 0, 10_000)
    assert card.moved("merchant_settlement") == (0, 0, 0, 7180)
    reviews = _reviews(processor, [tip, fuel])
    assert reviews == {tip: None, fuel: "over_capture_beyond_tolerance"}


def _reviews(processor: Processor, tokens: list[str]) -> dict[str, str | None]:
    import psycopg

    with psycopg.connect(processor.gateway.database_url) as conn:
        rows = conn.execute("SELECT token, review FROM card_transactions WHERE token = ANY(%s)", (tokens,)).fetchall()
    return {row[0]: row[1] for row in rows}


def test_processor_expiry_releases_the_hold_and_a_later_clearing_still_posts(
    ledger: LedgerClient, processor: Processor
) -> None:
    card = Card(ledger, processor)
    token = processor.authorize(card.token, 2000)["token"]
    processor.send(event("authorization.expiry", token, card.token, 0, offset_s=1))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 0, 0, 10_000)
    processor.send(event("clearing", token, card.token, 2000, offset_s=2, final=True))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 2000, 0, 10_000)


def test_clearing_after_the_ledger_expired_the_hold_still_posts(
    ledger_server: LedgerServer, database_url: str, ledger: LedgerClient, processor: Processor
) -> None:
    short = GatewayProcess(database_url, ledger_server.target, extra_args=["--hold-timeout-seconds", "1"],
                           secret=processor.gateway.secret).start()
    quick = Processor(short)
    try:
        card = Card(ledger, quick)
        answer = quick.authorize(card.token, 2000)
        deadline = time.monotonic() + 10
        while ledger.get_transfer(transfer_id=answer["hold_id"]).state != TransferState.EXPIRED:
            assert time.monotonic() < deadline, "the ledger did not expire the hold"
            time.sleep(0.1)
        assert card.wallet_balances() == (0, 0, 0, 10_000)
        quick.send(event("clearing", answer["token"], card.token, 2000, offset_s=1, final=True))
        quick.wait_applied()
        assert card.wallet_balances() == (0, 2000, 0, 10_000)
    finally:
        quick.close()
        short.stop()


def test_clearing_without_authorization_is_force_posted_and_a_late_authorization_holds_nothing(
    ledger: LedgerClient, processor: Processor
) -> None:
    card = Card(ledger, processor)
    token = "auth_" + uuid.uuid4().hex  # approved by the processor's stand-in: we were never asked
    processor.send(event("clearing", token, card.token, 1200, offset_s=2, final=True))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 1200, 0, 10_000)
    processor.send(event("authorization", token, card.token, 1200, offset_s=0, status="APPROVED"))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 1200, 0, 10_000)


def test_stand_in_authorization_webhook_places_the_hold(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    token = "auth_" + uuid.uuid4().hex
    processor.send(event("authorization", token, card.token, 900, status="APPROVED"))
    processor.wait_applied()
    assert card.wallet_balances() == (900, 0, 0, 10_000)
    processor.send(event("clearing", token, card.token, 900, offset_s=1, final=True))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 900, 0, 10_000)


def test_full_and_partial_reversals(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    full = processor.authorize(card.token, 1000)["token"]
    part = processor.authorize(card.token, 3000)["token"]
    processor.send(
        event("authorization.reversal", full, card.token, 1000, offset_s=1, authorized_amount=0),
        event("authorization.reversal", part, card.token, 1000, offset_s=1, authorized_amount=2000),
    )
    processor.wait_applied()
    assert card.wallet_balances() == (2000, 0, 0, 10_000)
    assert ledger.get_transfer(request_id=f"card:auth:{full}").state == TransferState.VOIDED
    processor.send(event("clearing", part, card.token, 2000, offset_s=2, final=True))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 2000, 0, 10_000)


def test_returns_linked_and_unlinked_and_return_reversal(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    purchase = processor.authorize(card.token, 3000)["token"]
    processor.send(event("clearing", purchase, card.token, 3000, offset_s=1, final=True, interchange=30))
    linked, unlinked = "ret_" + uuid.uuid4().hex, "ret_" + uuid.uuid4().hex
    processor.send(
        event("return", linked, card.token, 1000, offset_s=2, original_transaction_token=purchase, interchange=10),
        event("return", unlinked, card.token, 250, offset_s=2),
    )
    processor.wait_applied()
    assert card.wallet_balances() == (0, 3000, 0, 11_250)
    assert card.moved("fee_revenue") == (0, 10, 0, 30)
    processor.send(event("return.reversal", linked, card.token, 400, offset_s=3))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 3400, 0, 11_250)
    reversal = [e for e in ledger.iter_account_entries(account_id=card.wallet)][-1]
    assert reversal.kind == TransferKind.REVERSAL
    # A return reversal delivered before its return: posted on its own, same balances in the end.
    early = "ret_" + uuid.uuid4().hex
    processor.send(event("return.reversal", early, card.token, 100, offset_s=5))
    processor.send(event("return", early, card.token, 300, offset_s=4))
    processor.wait_applied()
    assert card.wallet_balances() == (0, 3500, 0, 11_550)
    assert card.moved("merchant_settlement") == (0, 1550, 0, 3500)


def test_duplicates_and_disorder_apply_once(ledger: LedgerClient, processor: Processor) -> None:
    card = Card(ledger, processor)
    token = processor.authorize(card.token, 2000)["token"]
    advice = event("authorization.advice", token, card.token, 0, offset_s=1, authorized_amount=2600)
    first = event("clearing", token, card.token, 1000, offset_s=2, final=False)
    last = event("clearing", token, card.token, 1500, offset_s=3, final=True, network_fee=3)
    processor.send(last, first)  # the final clearing first, in one delivery
    assert processor.send(first, advice)["duplicates"] == 1
    assert processor.send(last, advice, first) == {"accepted": 0, "duplicates": 3, "conflicts": []}
    processor.wait_applied()
    assert card.wallet_balances() == (0, 2500, 0, 10_000)
    assert card.moved("network_fees") == (0, 3, 0, 0)


def test_capture_beyond_the_balance_is_covered_by_the_cardholder_receivable(
    ledger: LedgerClient, processor: Processor
) -> None:
    card = Card(ledger, processor, funds=900)
    token = processor.authorize(card.token, 800)["token"]
    processor.send(event("clearing", token, card.token, 950, offset_s=1, final=True))  # a tip of 150
    processor.wait_applied()
    assert card.wallet_balances() == (0, 950, 0, 950)  # 50 advanced: the cardholder owes it
    assert card.moved("cardholder_receivable") == (0, 50, 0, 0)
    assert _reviews(processor, [token]) == {token: "cardholder_shortfall_covered"}


def test_settlement_file_reconciliation_reports_differences_and_posts_nothing(
    ledger: LedgerClient, processor: Processor, ledger_server: LedgerServer, tmp_path: pathlib.Path
) -> None:
    card = Card(ledger, processor)
    good = processor.authorize(card.token, 1000)["token"]
    off = processor.authorize(card.token, 500)["token"]
    extra = processor.authorize(card.token, 300)["token"]
    returned = "ret_" + uuid.uuid4().hex
    sent = [
        event("clearing", good, card.token, 1000, offset_s=1, final=True, interchange=15),
        event("clearing", off, card.token, 500, offset_s=1, final=True),
        event("clearing", extra, card.token, 300, offset_s=1, final=True),
        event("return", returned, card.token, 200, offset_s=2),
    ]
    processor.send(*sent)
    processor.wait_applied()
    never_delivered = event("clearing", "auth_" + uuid.uuid4().hex, card.token, 700, offset_s=1, final=True)
    day = sent[0]["created"][:10]

    def record(e: dict[str, object], amount: int | None = None) -> dict[str, object]:
        return {"event_token": e["token"], "transaction_token": e["transaction_token"], "card_token": card.token,
                "type": e["type"], "amount": e["amount"] if amount is None else amount,
                "interchange": e.get("interchange", 0)}

    settlement = {"settlement_date": day, "currency": ASSET, "records": [
        record(sent[0]), record(sent[1], amount=550), record(sent[3]), record(never_delivered)]}
    path = tmp_path / "settlement.json"
    path.write_text(json.dumps(settlement))
    before = card.wallet_balances()
    env = {**os.environ, "LEDGER_DATABASE_URL": processor.gateway.database_url,
           "LEDGER_TARGET": ledger_server.target, "LEDGER_API_KEY": ADMIN_KEY}
    run = subprocess.run([sys.executable, "-m", "ledger_cards.main", "reconcile", str(path)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    kinds = {d["event_token"]: d["kind"] for d in report["differences"]}
    ours = {sent[1]["token"]: "amount_mismatch", never_delivered["token"]: "missing_in_ledger"}
    assert {k: v for k, v in kinds.items() if k in ours} == ours
    assert kinds[sent[2]["token"]] == "missing_in_settlement"
    assert sent[0]["token"] not in kinds and sent[3]["token"] not in kinds
    proposal = next(p for p in report["proposals"] if p["for"] == sent[1]["token"])
    transfer = proposal["operations"][0]["create_transfer"]
    assert (transfer["debit_account_id"], transfer["amount"]) == (card.wallet, "50")
    assert report["posted"] is False
    assert card.wallet_balances() == before  # proposals only: nothing was posted

    # An operator reviews the amount mismatch and posts that proposal, and only that one.
    report_path = tmp_path / "report.json"
    report_path.write_text(json.dumps(report))
    post = [sys.executable, "-m", "ledger_cards.main", "post-proposals", str(report_path),
            "--event", sent[1]["token"], "--reviewer", "alice"]
    first = subprocess.run(post, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    posted = json.loads(first.stdout)
    assert [(r["for"], r["posted"]) for r in posted] == [(sent[1]["token"], True)]
    after = card.wallet_balances()
    assert after[1] == before[1] + 50 and after[3] == before[3], (before, after)  # the wallet paid 50 more
    recorded = ledger.get_transfer(transfer_id=posted[0]["transfers"][0])
    assert (recorded.amount, recorded.metadata["reviewed_by"]) == (50, "alice")
    again = subprocess.run(post, env=env, capture_output=True, text=True, timeout=60)  # posting twice posts once
    assert again.returncode == 0 and json.loads(again.stdout) == posted, again.stderr
    assert card.wallet_balances() == after
    other = subprocess.run([*post[:-1], "bob"], env=env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 1 and json.loads(other.stdout)[0]["error"] == "IDEMPOTENCY_KEY_REUSED"
    unknown = subprocess.run([*post[:5], "--event", "evt_nope", "--reviewer", "alice"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no proposal" in unknown.stderr
    assert card.wallet_balances() == after


def test_ledgerctl_and_the_sdk_issue_freeze_and_close_cards(
    ledger: LedgerClient, processor: Processor, capsys: pytest.CaptureFixture[str]
) -> None:
    from ledger_client.cards import CardsClient
    from ledger_client.cli.app import main as ledgerctl
    from tests.card_gateway import GATEWAY_ADMIN_KEY

    wallet = open_cardholder(ledger, ASSET, 1000)
    gateway = ["--gateway", processor.gateway.url, "--gateway-key", GATEWAY_ADMIN_KEY, "--json"]
    token = "card_" + uuid.uuid4().hex
    assert ledgerctl(["card", "issue", "--account", wallet, "--card-token", token, "--daily-limit", "500",
                      "--block-mcc", "7995", *gateway]) == 0
    issued = json.loads(capsys.readouterr().out)
    assert (issued["state"], issued["daily_limit"], issued["blocked_mccs"]) == ("ACTIVE", 500, ["7995"])
    assert ledgerctl(["card", "freeze", issued["id"], *gateway]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "FROZEN"
    assert processor.authorize(token, 100)["decline_reason"] == "CARD_FROZEN"
    with CardsClient(processor.gateway.url, admin_key=GATEWAY_ADMIN_KEY) as cards:
        assert cards.unfreeze_card(card_id=issued["id"]).state == "ACTIVE"
        assert cards.set_card_controls(card_id=issued["id"], monthly_limit=900).daily_limit is None
        assert cards.close_card(card_id=issued["id"]).state == "CLOSED"
    assert ledgerctl(["card", "unfreeze", issued["id"], *gateway]) == 3  # refused: closed for good
    assert ledgerctl(["card", "show", str(uuid.uuid4()), *gateway]) == 3  # not found
    wrong = ["--gateway", processor.gateway.url, "--gateway-key", "not-the-key", "--json"]
    assert ledgerctl(["card", "show", issued["id"], *wrong]) == 5  # unauthenticated
    capsys.readouterr()
