"""A node that refuses large log ranges, is down or is slow: the watcher shrinks the range, backs
off and reports it (metrics, logs), never crashes and never skips a block."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger_chain.ledger_gateway import LedgerGateway
from ledger_chain.node import EthNode
from ledger_chain.watcher import Watcher, WatcherConfig
from ledger_server.server import LedgerServer
from tests.chain_env import ChainEnv
from tests.conftest import ADMIN_KEY
from tests.invariants import assert_ledger_consistent
from tests.rpc_proxy import RpcProxy

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(stub: ledger_pb2_grpc.LedgerStub, database_url: str, ledger_server: LedgerServer) -> Iterator[ChainEnv]:
    chain = ChainEnv(stub, database_url, ledger_server.target, confirmations=2)
    yield chain
    chain.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_log_range_shrinks_when_the_node_refuses_it(env: ChainEnv) -> None:
    proxy = RpcProxy(env.node.url, max_log_range=4)
    try:
        gateway = LedgerGateway(env.ledger_target, ADMIN_KEY)
        watcher = Watcher(WatcherConfig(chain_id=env.chain_id, start_block=0, range_max=64, keep_blocks=64),
                          EthNode(proxy.url), gateway)
        address, account = env.deposit_account(env.usd)
        env.token.mint(env.node.accounts[0], 10**9)
        for amount in range(1, 11):
            env.token.transfer(0, address, amount)
            env.node.mine(2)
        env.node.mine(2)
        env.sync(watcher, env.store())
        assert env.balance(account) == sum(range(1, 11))
        assert proxy.refused_ranges > 0
        assert watcher.metrics.range_shrinks._value.get() >= 1
        assert watcher.metrics.log_range_blocks._value.get() <= 8
        gateway.close()
    finally:
        proxy.close()


def test_a_down_or_slow_node_makes_the_watcher_back_off_and_resume_without_skipping(
    env: ChainEnv, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = RpcProxy(env.node.url)
    gateway = LedgerGateway(env.ledger_target, ADMIN_KEY)
    watcher = Watcher(
        WatcherConfig(chain_id=env.chain_id, start_block=0, poll_interval_s=0.05, backoff_max_s=0.4,
                      keep_blocks=64),
        EthNode(proxy.url, timeout_s=0.3), gateway,
    )
    address, account = env.deposit_account(env.eth)
    stop = threading.Event()
    runner = threading.Thread(target=watcher.run, args=(env.database_url, stop), daemon=True)
    caplog.set_level(logging.WARNING, logger="ledger_chain")
    try:
        runner.start()
        env.node.send_eth(1, address, 1)
        env.node.mine(2)
        wait_for(lambda: env.balance(account) == 1)

        for fault in ("down", "slow"):
            if fault == "down":
                proxy.down = True
            else:
                proxy.delay_s = 0.6  # longer than the watcher's 0.3 s request timeout
            errors_before = watcher.metrics.node_errors.labels("NodeUnavailableError")._value.get()
            for value in (10, 20, 30):  # deposits while the node is unreachable for the watcher
                env.node.send_eth(1, address, value)
            env.node.mine(3)
            wait_for(lambda: watcher.metrics.node_up._value.get() == 0)
            wait_for(lambda floor=errors_before + 3: (  # type: ignore[misc]
                watcher.metrics.node_errors.labels("NodeUnavailableError")._value.get() >= floor))
            assert watcher.metrics.backoff_seconds._value.get() > 0
            assert runner.is_alive()
            proxy.down, proxy.delay_s = False, 0.0
            expected = 1 + 60 * (2 if fault == "slow" else 1)
            wait_for(lambda expected=expected: env.balance(account) == expected)  # type: ignore[misc]
            wait_for(lambda: watcher.metrics.node_up._value.get() == 1)
        assert any("backing off" in r.getMessage() for r in caplog.records)
        assert {d.state for d in env.deposits(account_id=account)} == {chain_pb2.CREDITED}
        assert len(env.deposits(account_id=account)) == 7
    finally:
        stop.set()
        runner.join(timeout=10)
        proxy.close()
        gateway.close()
    assert not runner.is_alive()
    with env.store()._conn as conn:  # every block from 0 to the checkpoint was processed, in one chain
        rows = conn.execute(
            "SELECT number, hash, parent_hash FROM chain_blocks WHERE chain_id = %s ORDER BY number", (env.chain_id,)
        ).fetchall()
    assert [r[0] for r in rows] == list(range(rows[0][0], rows[-1][0] + 1))
    assert all(child[2] == parent[1] for parent, child in itertools.pairwise(rows))
    assert_ledger_consistent(env.database_url)
