"""Acknowledged writes survive SIGKILL: load the server from several threads, kill it mid-load
without warning, restart it, and find every acknowledged transfer exactly once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import grpc

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from tests.conftest import RUN_SUMMARY, ServerProcess, open_channel
from tests.invariants import assert_ledger_consistent, transfers_by_request_id
from tests.ledger_api import new_account, new_asset, rid

WRITERS = 6
KILLS = 3


def test_acknowledged_transfers_survive_sigkill(
    server_process: Callable[..., ServerProcess], database_url: str
) -> None:
    server = server_process().start()
    with open_channel(server.target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        asset = new_asset(stub)
        accounts = [new_account(stub, asset).id for _ in range(6)]

    acknowledged: dict[str, str] = {}
    attempted: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with open_channel(server.target) as chan:
            writer_stub = ledger_pb2_grpc.LedgerStub(chan)
            while not stop.is_set():
                debit, credit = rng.sample(accounts, 2)
                request = pb.CreateTransferRequest(request_id=rid("k"), debit_account_id=debit,
                                                   credit_account_id=credit, amount=str(rng.randint(1, 99)),
                                                   asset=asset)
                with lock:
                    attempted.add(request.request_id)
                try:
                    result = writer_stub.CreateTransfer(request, timeout=2)
                except grpc.RpcError:
                    time.sleep(0.05)  # server down: this request is unacknowledged; move on
                    continue
                with lock:
                    acknowledged[request.request_id] = result.id

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(KILLS):
            time.sleep(random.uniform(0.8, 1.5))
            server.kill()
            time.sleep(0.2)
            server.start()
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    server.terminate()

    assert len(acknowledged) > 100, len(acknowledged)
    found = transfers_by_request_id(database_url)
    lost = [r for r in acknowledged if found.get(r) != [acknowledged[r]]]
    assert lost == [], f"acknowledged but missing or different: {lost[:5]}"
    duplicated = [r for r, ids in found.items() if len(ids) != 1]
    assert duplicated == []
    assert set(found) <= attempted | {r for r in found if r.startswith("expire:")}
    assert_ledger_consistent(database_url)
    RUN_SUMMARY.append(f"fault=sigkill_single_requests acknowledged={len(acknowledged)} attempted={len(attempted)} "
                       f"faults_injected={KILLS} lost=0 duplicated=0")
