"""`ledger-chain-watcher` as real processes: SIGKILL at random points of a busy run with two
watchers running at once, and a standby taking over from a dead leader. In every case each deposit
is credited exactly once and the ledger's invariants hold."""

from __future__ import annotations

import os
import pathlib
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger_chain.leadership import WATCHER_LOCK_CLASS, lock_key
from ledger_server.server import LedgerServer
from tests.chain_env import ChainEnv
from tests.conftest import ADMIN_KEY, ROOT
from tests.invariants import assert_ledger_consistent

pytestmark = pytest.mark.timeout(180)
ETHER = 10**18


class WatcherProcess:
    def __init__(self, env: ChainEnv, log_dir: pathlib.Path, name: str) -> None:
        self.env = env
        self.log_dir = log_dir
        self.name = name
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        log_file = (self.log_dir / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ledger_chain.watcher_main", "--rpc-url", self.env.node.url,
             "--chain-id", str(self.env.chain_id), "--ledger-target", self.env.ledger_target,
             "--start-block", "0", "--poll-interval", "0.1", "--standby-poll", "0.5", "--backoff-max", "2"],
            env={**os.environ, "LEDGER_DATABASE_URL": self.env.database_url, "LEDGER_API_KEY": ADMIN_KEY}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=log_file,
        )
        log_file.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def env(stub: ledger_pb2_grpc.LedgerStub, database_url: str, ledger_server: LedgerServer) -> Iterator[ChainEnv]:
    chain = ChainEnv(stub, database_url, ledger_server.target, confirmations=2)
    yield chain
    chain.close()


@pytest.fixture
def watchers(env: ChainEnv, tmp_path: pathlib.Path) -> Iterator[Callable[[str], WatcherProcess]]:
    made: list[WatcherProcess] = []

    def make(name: str) -> WatcherProcess:
        made.append(WatcherProcess(env, tmp_path, name))
        return made[-1]

    yield make
    for watcher in made:
        if watcher.running():
            watcher.kill()


def leader_pid(env: ChainEnv) -> int | None:
    with psycopg.connect(env.database_url) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid AND l.objid = %s::oid"
            " AND l.objsubid = 2",
            (WATCHER_LOCK_CLASS, lock_key(env.chain_id)),
        ).fetchone()
    return None if row is None else int(str(row[0]).rsplit(":", 1)[1])


def wait_until_credited(env: ChainEnv, expected: dict[str, int], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        done = all(
            env.balance(account) == amount
            and all(d.state == chain_pb2.CREDITED for d in env.deposits(account_id=account))
            for account, amount in expected.items()
        )
        if done:
            return
        assert time.monotonic() < deadline, {a: (env.balance(a), amount) for a, amount in expected.items()}
        time.sleep(0.2)


def test_sigkill_at_random_points_and_two_watchers_at_once_credit_each_deposit_once(
    env: ChainEnv, watchers: Callable[[str], WatcherProcess]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}")
    eth_targets = [env.deposit_account(env.eth) for _ in range(4)]
    usd_targets = [env.deposit_account(env.usd) for _ in range(4)]
    expected = {account: 0 for _, account in eth_targets + usd_targets}
    deposits = 0
    env.token.mint(env.node.accounts[0], 10**12)
    pair = [watchers("a"), watchers("b")]
    for watcher in pair:
        watcher.start()
    kills = 0
    env.node.automine(False)
    for _ in range(14):
        for _ in range(rng.randint(1, 3)):
            address, account = rng.choice(eth_targets)
            value = rng.randint(1, 10**6)
            env.node.send_eth(rng.randint(1, 4), address, value)
            expected[account] += value
            deposits += 1
        batch = [(rng.choice(usd_targets), rng.randint(1, 1000)) for _ in range(rng.randint(1, 3))]
        env.token.batch_transfer(0, [(address, value) for (address, _), value in batch])
        for (_, account), value in batch:
            expected[account] += value
            deposits += 1
        env.node.mine(1)
        time.sleep(rng.uniform(0.2, 1.2))
        victim = rng.choice(pair)
        if rng.random() < 0.6:
            victim.kill()
            kills += 1
            victim.start()
    env.node.automine(True)
    env.node.mine(env.confirmations)
    wait_until_credited(env, expected)
    for watcher in pair:
        watcher.kill()

    credits = env.credits_by_request_id()
    assert len(credits) == deposits, (len(credits), deposits)
    assert set(credits.values()) == {1}
    print(f"{deposits} deposits, {kills} SIGKILLs, credited once each")
    assert kills >= 3
    assert_ledger_consistent(env.database_url)


def test_a_standby_takes_over_within_seconds_of_the_leaders_death(
    env: ChainEnv, watchers: Callable[[str], WatcherProcess]
) -> None:
    first, second = watchers("first"), watchers("second")
    first.start()
    second.start()
    address, account = env.deposit_account(env.eth)
    env.node.send_eth(1, address, ETHER)
    env.node.mine(env.confirmations)
    wait_until_credited(env, {account: ETHER})
    leader = leader_pid(env)
    assert leader in (first.pid, second.pid)
    dead, standby = (first, second) if leader == first.pid else (second, first)

    dead.kill()
    killed_at = time.monotonic()
    while leader_pid(env) != standby.pid:
        assert time.monotonic() - killed_at < 15, "the standby did not take over"
        time.sleep(0.05)
    took = time.monotonic() - killed_at
    print(f"standby took over {took:.2f}s after the leader's SIGKILL")
    assert took < 10

    env.node.send_eth(2, address, 2 * ETHER)
    env.node.mine(env.confirmations)
    wait_until_credited(env, {account: 3 * ETHER})
    assert set(env.credits_by_request_id().values()) == {1}
    assert_ledger_consistent(env.database_url)
