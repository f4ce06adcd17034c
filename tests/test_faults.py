"""Fault injection under load from several client processes that log every acknowledged request:
the server SIGKILLed and restarted, PostgreSQL restarted, Redis killed and restarted, and clients
retrying after random client-side timeouts. After each: every acknowledged transfer exists exactly
once, nothing exists twice, and ledger-verify passes."""

from __future__ import annotations

import multiprocessing
import pathlib
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest

from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from ledger_server.migrate import migrate
from tests.conftest import ADMIN_KEY, RUN_SUMMARY, ServerProcess, open_channel
from tests.invariants import assert_ledger_consistent, transfers_by_request_id
from tests.ledger_api import error_reason, new_account, new_asset, rid
from tests.postgres_process import PrivatePostgres
from tests.redis_process import RedisProcess

CLIENT_PROCESSES = 3
LOAD_SECONDS = 6.0
RETRYABLE = {grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}


def load_client(target: str, key: str, asset: str, accounts: list[str], seconds: float, seed: int,
                timeouts: list[float], log_path: str, batch_size: int = 1) -> None:
    """One client process: transfers until time is up, retrying each call with the same request id.
    `batch_size` > 1: CreateTransfers calls of that many items (each with its own request id; large
    enough and the server writes them in parts, see posting._RowStream)."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    with open_channel(target, key) as channel, open(log_path, "w") as log:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        while time.monotonic() < deadline:
            items = []
            for _ in range(batch_size):
                debit, credit = rng.sample(accounts, 2)
                items.append(pb.CreateTransferRequest(
                    request_id=rid("f"), debit_account_id=debit, credit_account_id=credit,
                    amount=str(rng.randint(1, 50)), asset=asset))
            outcomes = ["GAVE_UP"] * batch_size
            batch = pb.CreateTransfersRequest(request_id=rid("fb"), transfers=items)
            for _ in range(300):
                try:
                    if batch_size == 1:
                        outcomes = [stub.CreateTransfer(items[0], timeout=rng.choice(timeouts)).id]
                    else:
                        response = stub.CreateTransfers(batch, timeout=rng.choice(timeouts))
                        outcomes = [r.transfer.id if r.HasField("transfer") else "REJECTED:" + r.error.reason
                                    for r in response.results]
                    break
                except grpc.RpcError as error:
                    if error.code() not in RETRYABLE:
                        outcomes = ["REJECTED:" + error_reason(error)] * batch_size
                        break
                    time.sleep(rng.uniform(0.005, 0.05))
            log.writelines(f"{item.request_id} {outcome}\n" for item, outcome in zip(items, outcomes, strict=True))
            log.flush()


@dataclass
class Run:
    acknowledged: dict[str, str]
    unacknowledged: set[str]


def run_load(target: str, asset: str, accounts: list[str], timeouts: list[float],
             inject: Callable[[], int], batch_size: int = 1) -> tuple[Run, int]:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="ledger-faults-"))
    context = multiprocessing.get_context("spawn")
    clients = [
        context.Process(target=load_client, args=(target, ADMIN_KEY, asset, accounts, LOAD_SECONDS, seed, timeouts,
                                                  str(folder / f"client-{seed}.log"), batch_size))
        for seed in range(CLIENT_PROCESSES)
    ]
    for client in clients:
        client.start()
    faults = inject()
    for client in clients:
        client.join(timeout=LOAD_SECONDS + 120)
        assert client.exitcode == 0, client.exitcode
    acknowledged: dict[str, str] = {}
    unacknowledged: set[str] = set()
    for path in folder.glob("client-*.log"):
        for line in path.read_text().splitlines():
            request_id, outcome = line.split(" ", 1)
            if outcome == "GAVE_UP":
                unacknowledged.add(request_id)
            elif not outcome.startswith("REJECTED:"):
                acknowledged[request_id] = outcome
    return Run(acknowledged, unacknowledged), faults


def check(name: str, database_url: str, run: Run, faults: int) -> None:
    found = transfers_by_request_id(database_url)
    lost = [r for r, t in run.acknowledged.items() if found.get(r) != [t]]
    duplicated = [r for r, ids in found.items() if len(ids) > 1]
    assert_ledger_consistent(database_url)
    RUN_SUMMARY.append(
        f"fault={name} acknowledged={len(run.acknowledged)} unacknowledged={len(run.unacknowledged)} "
        f"faults_injected={faults} lost={len(lost)} duplicated={len(duplicated)}")
    assert len(run.acknowledged) > 50, len(run.acknowledged)
    assert lost == [] and duplicated == []


def prepare(target: str) -> tuple[str, list[str]]:
    with open_channel(target) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        asset = new_asset(stub)
        return asset, [new_account(stub, asset).id for _ in range(8)]


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres()
    migrate(postgres.url)
    yield postgres
    postgres.stop()


@pytest.mark.parametrize("batch_size", [1, 300], ids=["single", "batches_in_parts"])
def test_server_sigkill_and_restart(
    server_process: Callable[..., ServerProcess], database_url: str, batch_size: int
) -> None:
    """SIGKILL three times under load; with CreateTransfers of 300 items, which the server writes in
    parts while applying the rest, a kill between parts loses nothing acknowledged and leaves no part
    behind (a retry replays or redoes the whole call)."""
    server = server_process().start()
    asset, accounts = prepare(server.target)

    def kill_three_times() -> int:
        for _ in range(3):
            time.sleep(random.uniform(0.8, 1.5))
            server.kill()
            time.sleep(0.3)
            server.start()
        return 3

    run, faults = run_load(server.target, asset, accounts, [5.0], kill_three_times, batch_size)
    check("server_sigkill" if batch_size == 1 else "server_sigkill_batches", database_url, run, faults)


@pytest.mark.parametrize("batch_size", [1, 300], ids=["single", "batches_in_parts"])
def test_postgres_restart(
    server_process: Callable[..., ServerProcess], private_postgres: PrivatePostgres, batch_size: int
) -> None:
    """PostgreSQL down for a second under load; with CreateTransfers of 300 items, the connection
    breaks while a batch's parts are on their way (the engine drops it and retries the batch)."""
    server = server_process(private_postgres.url).start()
    asset, accounts = prepare(server.target)

    def restart_postgres() -> int:
        time.sleep(1.5)
        private_postgres.restart(down_s=1.0)
        return 1

    run, faults = run_load(server.target, asset, accounts, [5.0], restart_postgres, batch_size)
    check("postgres_restart" if batch_size == 1 else "postgres_restart_batches", private_postgres.url, run, faults)


def test_redis_killed_and_restarted(server_process: Callable[..., ServerProcess], database_url: str) -> None:
    redis_server = RedisProcess().start()
    try:
        server = server_process(extra_env={"LEDGER_REDIS_URL": redis_server.url}).start()
        asset, accounts = prepare(server.target)

        def kill_redis() -> int:
            time.sleep(1.5)
            redis_server.kill()
            time.sleep(1.5)
            redis_server.start()
            return 1

        run, faults = run_load(server.target, asset, accounts, [5.0], kill_redis)
        check("redis_restart", database_url, run, faults)
    finally:
        if redis_server.process is not None and redis_server.process.poll() is None:
            redis_server.kill()


def test_client_timeouts_and_retries(server_process: Callable[..., ServerProcess], database_url: str) -> None:
    server = server_process().start()
    asset, accounts = prepare(server.target)
    run, faults = run_load(server.target, asset, accounts, [0.001, 0.003, 0.01, 5.0], lambda: 0)
    check("client_timeouts", database_url, run, faults)
