"""Group commit keeps requests isolated: one batch, one transaction, but each request its own result.

Many requests are released at once from threads against the in-process server so that the group
committer packs them into shared batches (the ledger_batch_jobs histogram proves batches larger
than one formed). Among them: an overdraft race, transfers from empty wallets, request ids reused
with another payload, exact replays, and racing duplicates. Every accepted request must commit,
every rejected one must leave no trace, whatever it shared a batch with.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
import pytest

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from ledger_server.server import LedgerServer
from tests.ledger_api import error_reason, new_account, new_asset, rid, transfer

# Both writers: in its own process (as deployed) and in a thread of the server (ServerConfig.writer_process).
pytestmark = pytest.mark.parametrize("ledger_server", ["process", "thread"], indirect=True, scope="module")

ROUNDS_MAX = 6
RACE_DEBITS = 15  # debits of 10 against a wallet holding 100: exactly 10 fit


@dataclass
class Result:
    label: str
    transfer: pb.Transfer | None = None
    reason: str | None = None
    code: grpc.StatusCode | None = None
    replayed: bool = False


def _multi_job_batches(server: LedgerServer) -> float:
    """Committed batches that held more than one job, so far."""
    registry = server.metrics.registry
    total = registry.get_sample_value("ledger_batch_jobs_count") or 0.0
    singles = registry.get_sample_value("ledger_batch_jobs_bucket", {"le": "1.0"}) or 0.0
    return total - singles


def _fire(
    stub: ledger_pb2_grpc.LedgerStub, requests: list[tuple[str, pb.CreateTransferRequest]]
) -> list[Result]:
    """Send every request from its own thread, all released together by a barrier."""
    barrier = threading.Barrier(len(requests))
    results: list[Result | None] = [None] * len(requests)

    def send(index: int, label: str, request: pb.CreateTransferRequest) -> None:
        barrier.wait(timeout=30)
        try:
            response, call = stub.CreateTransfer.with_call(request, timeout=30)
        except grpc.RpcError as error:
            results[index] = Result(label, reason=error_reason(error), code=error.code())
            return
        replayed = ("ledger-replayed", "true") in tuple(call.trailing_metadata() or ())
        results[index] = Result(label, transfer=response, replayed=replayed)

    threads = [
        threading.Thread(target=send, args=(i, label, request)) for i, (label, request) in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in results), "a request never answered"
    return [r for r in results if r is not None]


def _request(
    debit: str, credit: str, amount: int, asset: str, request_id: str | None = None
) -> pb.CreateTransferRequest:
    return pb.CreateTransferRequest(
        request_id=request_id or rid("iso"), debit_account_id=debit, credit_account_id=credit,
        amount=str(amount), asset=asset,
    )


def _one_round(stub: ledger_pb2_grpc.LedgerStub, server: LedgerServer) -> float:
    """One burst of mixed requests; returns how many multi-job batches formed during the burst."""
    asset = new_asset(stub)
    bank = new_account(stub, asset)
    shop = new_account(stub, asset)
    racer = new_account(stub, asset, no_overdraft=True)
    payers = [new_account(stub, asset, no_overdraft=True) for _ in range(8)]
    empties = [new_account(stub, asset, no_overdraft=True) for _ in range(5)]
    for wallet in [racer, *payers]:
        transfer(stub, bank.id, wallet.id, 100, asset)
    earlier = [transfer(stub, bank.id, payers[0].id, 5, asset) for _ in range(4)]  # ids to replay and reuse

    shared_id = rid("twin")
    requests: list[tuple[str, pb.CreateTransferRequest]] = []
    requests += [("race", _request(racer.id, shop.id, 10, asset)) for _ in range(RACE_DEBITS)]
    requests += [("pay", _request(p.id, shop.id, 30, asset)) for p in payers]
    requests += [("empty", _request(e.id, shop.id, 1, asset)) for e in empties]
    requests += [("reuse", _request(bank.id, payers[0].id, 6, asset, t.request_id)) for t in earlier]
    requests += [("replay", _request(bank.id, payers[0].id, 5, asset, t.request_id)) for t in earlier]
    requests += [("twin", _request(bank.id, shop.id, 7, asset, shared_id)) for _ in range(3)]
    requests += [("twin-other", _request(bank.id, shop.id, 8, asset, shared_id))]
    before = _multi_job_batches(server)
    results = _fire(stub, requests)
    shared_batches = _multi_job_batches(server) - before
    by_label: dict[str, list[Result]] = {}
    for result in results:
        by_label.setdefault(result.label, []).append(result)

    race = Counter("ok" if r.transfer else r.reason for r in by_label["race"])
    assert race == {"ok": 10, "INSUFFICIENT_FUNDS": RACE_DEBITS - 10}, race
    assert all(r.transfer is not None and not r.replayed for r in by_label["pay"])
    assert all(r.reason == "INSUFFICIENT_FUNDS" and r.code == grpc.StatusCode.FAILED_PRECONDITION
               for r in by_label["empty"])
    assert all(r.reason == "IDEMPOTENCY_KEY_REUSED" and r.code == grpc.StatusCode.ALREADY_EXISTS
               for r in by_label["reuse"])
    replays = by_label["replay"]
    assert all(r.transfer is not None and r.replayed for r in replays)
    assert sorted(r.transfer.id for r in replays if r.transfer) == sorted(t.id for t in earlier)

    # One request id, two payloads, racing: exactly one payload wins; its copies replay it, the
    # other payload is refused (or, if it came first, the roles swap).
    twins = by_label["twin"] + by_label["twin-other"]
    winners = {r.transfer.amount for r in twins if r.transfer is not None}
    assert len(winners) == 1, twins
    won = winners.pop()
    assert len({r.transfer.id for r in twins if r.transfer is not None}) == 1
    losers = [r for r in twins if r.transfer is None]
    assert all(r.reason == "IDEMPOTENCY_KEY_REUSED" for r in losers)
    assert len(losers) == (1 if won == "7" else 3)

    def account(a: pb.Account) -> Any:
        return stub.GetAccount(pb.GetAccountRequest(id=a.id))

    got = account(racer)
    assert (got.credits_posted, got.debits_posted, got.version) == ("100", "100", 11)
    for payer in payers[1:]:
        got = account(payer)
        assert (got.credits_posted, got.debits_posted, got.version) == ("100", "30", 2)
    got = account(payers[0])
    assert (got.credits_posted, got.debits_posted, got.version) == ("120", "30", 6)  # replays wrote nothing
    for empty in empties:
        got = account(empty)
        # Rejections wrote nothing.
        assert (got.credits_posted, got.debits_posted, got.version) == ("0", "0", 0)
    got = account(shop)
    assert got.credits_posted == str(100 + 8 * 30 + int(won))
    # Rejections are final: the same request again gets the same answer, even once funds exist.
    transfer(stub, bank.id, empties[0].id, 50, asset)
    again = _fire(stub, [("empty", r) for label, r in requests if label == "empty"][:1])
    assert again[0].reason == "INSUFFICIENT_FUNDS"
    return shared_batches


def test_requests_sharing_a_batch_keep_their_own_results(
    stub: ledger_pb2_grpc.LedgerStub, ledger_server: LedgerServer
) -> None:
    shared_batches = 0.0
    for rounds in range(1, ROUNDS_MAX + 1):
        shared_batches += _one_round(stub, ledger_server)
        if shared_batches > 0 and rounds >= 2:
            break
    assert shared_batches > 0, "the bursts never shared a batch: nothing was tested"


def test_books_balance_after_the_rounds(database_url: str, ledger_server: LedgerServer) -> None:
    """Whatever was rejected or replayed, every asset's debits still equal its credits."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT asset, sum(debits_posted) - sum(credits_posted), "
            "sum(debits_pending) - sum(credits_pending) FROM accounts GROUP BY asset"
        ).fetchall()
    assert rows and all(posted == 0 and pending == 0 for _, posted, pending in rows), rows

