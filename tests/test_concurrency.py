"""Hammer one server from many clients with random transfers, holds, posts, voids, reversals and
duplicates; then prove the ledger is exactly consistent and every request took effect once."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import pytest

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.conftest import ServerProcess, open_channel
from tests.invariants import assert_ledger_consistent, transfers_by_request_id
from tests.ledger_api import error_reason, new_account, new_asset, rid

CLIENTS = 16
OPS_PER_CLIENT = 160
RETRYABLE = {grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass
class Journal:
    """What the clients were told: request id -> transfer id (success) or reason (rejection)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    succeeded: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    holds: list[str] = field(default_factory=list)
    posted: list[str] = field(default_factory=list)
    sent: list[tuple[str, object]] = field(default_factory=list)


def call(method: Callable[..., pb.Transfer], request: object) -> pb.Transfer | str:
    """Send until a final answer: retries transient failures with the same request (same id)."""
    for _ in range(50):
        try:
            return method(request, timeout=30)
        except grpc.RpcError as error:
            if error.code() in RETRYABLE:
                continue
            return error_reason(error)
    raise AssertionError("no final answer after 50 attempts")


def client_loop(stub: ledger_pb2_grpc.LedgerStub, asset: str, accounts: list[str], journal: Journal,
                seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(OPS_PER_CLIENT):
        op = rng.choices(["transfer", "hold", "post", "void", "reverse", "adjust", "replay"],
                         [40, 20, 15, 8, 10, 6, 7])[0]
        request_id = rid(op)
        method: Callable[..., pb.Transfer]
        request: object
        if op in ("transfer", "hold"):
            debit, credit = rng.sample(accounts, 2)
            request = pb.CreateTransferRequest(
                request_id=request_id, debit_account_id=debit, credit_account_id=credit,
                amount=str(rng.randint(1, 400)), asset=asset, pending=op == "hold",
                timeout_seconds=rng.choice([0, 0, 1]) if op == "hold" else 0,
            )
            method = stub.CreateTransfer
        elif op in ("post", "void") and journal.holds:
            pending_id = rng.choice(journal.holds)
            if op == "post":
                amount = rng.choice(["", str(rng.randint(1, 200))])
                request = pb.PostPendingTransferRequest(request_id=request_id, pending_id=pending_id, amount=amount)
                method = stub.PostPendingTransfer
            else:
                request = pb.VoidPendingTransferRequest(request_id=request_id, pending_id=pending_id)
                method = stub.VoidPendingTransfer
        elif op == "adjust" and journal.holds:
            request = pb.AdjustPendingTransferRequest(request_id=request_id, pending_id=rng.choice(journal.holds),
                                                      amount=str(rng.randint(1, 500)))
            method = stub.AdjustPendingTransfer
        elif op == "reverse" and journal.posted:
            request = pb.ReverseTransferRequest(
                request_id=request_id, transfer_id=rng.choice(journal.posted),
                amount=rng.choice(["", str(rng.randint(1, 100))]),
            )
            method = stub.ReverseTransfer
        elif op == "replay" and journal.sent:
            original_id, original_request = rng.choice(journal.sent)
            replayed = call(getattr(stub, _method_name(original_request)), original_request)
            with journal.lock:
                expected = journal.succeeded.get(original_id) or journal.rejected.get(original_id)
            got = replayed.id if isinstance(replayed, pb.Transfer) else replayed
            assert got == expected, (original_id, got, expected)
            continue
        else:
            continue
        result = call(method, request)
        with journal.lock:
            journal.sent.append((request_id, request))
            if isinstance(result, pb.Transfer):
                journal.succeeded[request_id] = result.id
                if result.kind == pb.HOLD:
                    journal.holds.append(result.id)
                elif result.kind in (pb.SINGLE_PHASE, pb.POST_PENDING):
                    journal.posted.append(result.id)
            else:
                journal.rejected[request_id] = result


def _method_name(request: object) -> str:
    return {
        pb.CreateTransferRequest: "CreateTransfer", pb.PostPendingTransferRequest: "PostPendingTransfer",
        pb.VoidPendingTransferRequest: "VoidPendingTransfer", pb.ReverseTransferRequest: "ReverseTransfer",
        pb.AdjustPendingTransferRequest: "AdjustPendingTransfer",
    }[type(request)]


@pytest.fixture(scope="module")
def real_server(database_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url).start()
    yield server
    server.terminate()


def test_many_clients_keep_the_ledger_exact(real_server: ServerProcess, database_url: str) -> None:
    with open_channel(real_server.target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        asset = new_asset(stub)
        world = new_account(stub, asset)  # the outside world: may go negative
        wallets = [new_account(stub, asset, no_overdraft=True).id for _ in range(4)]
        plain = [new_account(stub, asset).id for _ in range(2)]
        credit_line = new_account(stub, asset, no_overcredit=True).id
        for wallet in wallets:
            stub.CreateTransfer(pb.CreateTransferRequest(
                request_id=rid("fund"), debit_account_id=world.id, credit_account_id=wallet, amount="5000",
                asset=asset))
        accounts = [world.id, *wallets, *plain, credit_line]
        journal = Journal()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for future in [pool.submit(client_loop, stub, asset, accounts, journal, seed) for seed in range(CLIENTS)]:
                future.result()

    assert len(journal.succeeded) > 500 and len(journal.rejected) > 20, (len(journal.succeeded), len(journal.rejected))
    found = transfers_by_request_id(database_url)
    for request_id, transfer_id in journal.succeeded.items():
        assert found.get(request_id) == [transfer_id], request_id
    for request_id in journal.rejected:
        assert request_id not in found, request_id
    assert_ledger_consistent(database_url)


def test_fifty_concurrent_duplicates_execute_once(real_server: ServerProcess, database_url: str) -> None:
    with open_channel(real_server.target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        asset = new_asset(stub)
        a, b = new_account(stub, asset), new_account(stub, asset)
        request = pb.CreateTransferRequest(
            request_id=rid("dup"), debit_account_id=a.id, credit_account_id=b.id, amount="777", asset=asset)
        barrier = threading.Barrier(50)

        def send() -> str:
            barrier.wait()
            result = call(stub.CreateTransfer, request)
            assert isinstance(result, pb.Transfer), result
            return result.id

        with ThreadPoolExecutor(50) as pool:
            ids = set(pool.map(lambda _: send(), range(50)))
        assert len(ids) == 1
        assert stub.GetAccount(pb.GetAccountRequest(id=b.id)).credits_posted == "777"
    assert transfers_by_request_id(database_url)[request.request_id] == list(ids)
    assert_ledger_consistent(database_url)
