"""Server replicas on one database: two in this process hammering the same hot accounts (advisory
locks and SERIALIZABLE keep the books exact; contention costs retries, never money), and the
processes of `ledger-server --processes 2` sharing one port."""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import grpc
import psutil
import pytest

from benchmarks.services import free_port_block
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from ledger_client import ChannelSettings, LedgerClient
from ledger_server.server import LedgerServer
from tests.conftest import (
    ADMIN_KEY,
    RUN_SUMMARY,
    ServerProcess,
    free_port,
    kill_one_process_and_expect_the_unit_to_stop,
    open_channel,
    start_ledger_server,
)
from tests.invariants import assert_ledger_consistent, transfers_by_request_id
from tests.ledger_api import new_account, new_asset, rid

RETRYABLE = {grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture
def replicas(database_url: str) -> Iterator[list[LedgerServer]]:
    servers = [start_ledger_server(database_url) for _ in range(2)]
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


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return str(response.read().decode())


def _writers(unit_pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(unit_pid).children(recursive=True)
            if "ledger_server.writer_process" in " ".join(p.cmdline())]


def _batches(metrics_text: str) -> float:
    return sum(float(line.split()[-1]) for line in metrics_text.splitlines()
               if line.startswith("ledger_batch_jobs_count"))


def test_processes_share_one_port_and_one_dying_stops_the_unit(
    server_process: Callable[..., ServerProcess], database_url: str
) -> None:
    """`ledger-server --processes 2`: two replicas behind one port, each with its metrics on its own
    port, committing through one shared writer process; transfers over many connections reach both,
    and every acknowledged one is stored once. When one process is killed (-9) the parent stops the
    other and exits non-zero, so the orchestrator restarts the unit rather than it running short,
    and the writer, whose servers are gone, exits too."""
    port = free_port()
    metrics_port = free_port_block(2, avoid={port})
    server = server_process(port=port, extra_env={"LEDGER_PROCESSES": "2",
                                       "LEDGER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"}).start()
    deadline = time.monotonic() + 30
    while True:
        try:
            for port in (metrics_port, metrics_port + 1):
                _scrape(port)
            break
        except OSError:
            assert time.monotonic() < deadline, "the second server process did not start"
            time.sleep(0.2)
    stub = ledger_pb2_grpc.LedgerStub(open_channel(server.target))
    asset = new_asset(stub)
    wallet = new_account(stub, asset).id
    world = new_account(stub, asset).id
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    # the SDK spreads its calls over its connections in turn; the kernel spreads connections
    client = LedgerClient(settings=ChannelSettings(target=server.target, token=ADMIN_KEY, connections=16))

    def pay() -> None:
        for _ in range(10):
            transfer = client.create_transfer(debit_account_id=world, credit_account_id=wallet, amount=1,
                                              asset=asset)
            with lock:
                acknowledged[transfer.request_id] = transfer.id

    threads = [threading.Thread(target=pay) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    client.close()
    assert len(acknowledged) == 160
    assert all(_batches(_scrape(port)) > 0 for port in (metrics_port, metrics_port + 1)), "a process got no work"
    assert server.process is not None
    writers = _writers(server.process.pid)
    assert len(writers) == 1, "the two processes share one writer"
    kill_one_process_and_expect_the_unit_to_stop(server.process, 2)
    writers[0].wait(timeout=20)  # raises if the writer outlived its servers
    found = transfers_by_request_id(database_url)
    assert all(found.get(r) == [t] for r, t in acknowledged.items())
    assert_ledger_consistent(database_url)
