"""Two server replicas on one database, hammering the same hot accounts: advisory locks and
SERIALIZABLE keep the books exact; contention costs retries, never money."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import grpc
import pytest

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from ledger_server.access.callers import provision_admin_key
from ledger_server.server import LedgerServer, ServerConfig
from tests.conftest import ADMIN_KEY, RUN_SUMMARY, open_channel
from tests.invariants import assert_ledger_consistent, transfers_by_request_id
from tests.ledger_api import new_account, new_asset, rid

RETRYABLE = {grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture
def replicas(database_url: str) -> Iterator[list[LedgerServer]]:
    provision_admin_key(database_url, ADMIN_KEY)
    servers = [LedgerServer(ServerConfig(listen="127.0.0.1:0", database_url=database_url)).start() for _ in range(2)]
    yield servers
    for server in servers:
        server.stop(grace_s=2)


def test_two_replicas_on_hot_accounts(replicas: list[LedgerServer], database_url: str) -> None:
    channels = [open_channel(r.target) for r in replicas]
    stubs = [ledger_pb2_grpc.LedgerStub(c) for c in channels]
    asset = new_asset(stubs[0])
    wallets = [new_account(stubs[0], asset, no_overdraft=True).id for _ in range(3)]
    world = new_account(stubs[0], asset).id
    for wallet in wallets:
        stubs[0].CreateTransfer(pb.CreateTransferRequest(request_id=rid(), debit_account_id=world,
                                                         credit_account_id=wallet, amount="2000", asset=asset))
    acknowledged: dict[str, str] = {}
    retries = [0]
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        stub = stubs[seed % 2]
        for _ in range(120):
            debit, credit = rng.sample([*wallets, world], 2)
            request = pb.CreateTransferRequest(request_id=rid(), debit_account_id=debit, credit_account_id=credit,
                                               amount=str(rng.randint(1, 30)), asset=asset)
            for _ in range(100):
                try:
                    result = stub.CreateTransfer(request, timeout=10)
                except grpc.RpcError as error:
                    if error.code() in RETRYABLE:
                        with lock:
                            retries[0] += 1
                        continue
                    break  # a business rejection (insufficient funds)
                with lock:
                    acknowledged[request.request_id] = result.id
                break

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for channel in channels:
        channel.close()
    found = transfers_by_request_id(database_url)
    assert all(found.get(r) == [t] for r, t in acknowledged.items())
    assert_ledger_consistent(database_url)
    causes: dict[str, int] = {}
    for replica in replicas:
        for metric in replica.metrics.batch_retries.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    causes[sample.labels["cause"]] = causes.get(sample.labels["cause"], 0) + int(sample.value)
    batch_retries = sum(causes.values())
    RUN_SUMMARY.append(f"replicas=2 hot_accounts=4 acknowledged={len(acknowledged)} client_retries={retries[0]} "
                       f"server_batch_retries={batch_retries} {causes}")
    assert len(acknowledged) > 500
