"""Deposits against a real anvil node: credited exactly once after N confirmations; reorgs shallower
and deeper than N. The watcher runs in-process here, one unit of work at a time (deterministic);
tests/test_chain_watcher_process.py runs it as real processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_chain.deposit_store import DepositStore, StaleCheckpointError
from ledger_chain.scanner import ChainMovedError
from ledger_chain.watcher import Watcher
from ledger_server.server import LedgerServer
from tests.chain_env import ChainEnv, random_address
from tests.invariants import assert_ledger_consistent
from tests.ledger_api import new_account, rid, transfer

pytestmark = pytest.mark.timeout(120)
ETHER = 10**18


@pytest.fixture
def env(stub: ledger_pb2_grpc.LedgerStub, database_url: str, ledger_server: LedgerServer) -> Iterator[ChainEnv]:
    chain = ChainEnv(stub, database_url, ledger_server.target, confirmations=3)
    yield chain
    chain.close()


def states(env: ChainEnv, account_id: str) -> list[int]:
    return sorted(d.state for d in env.deposits(account_id=account_id))


def test_eth_and_token_deposits_are_credited_exactly_once_after_confirmations(env: ChainEnv) -> None:
    eth_a, eth_a_account = env.deposit_account(env.eth)
    eth_b, eth_b_account = env.deposit_account(env.eth)
    usd_c, usd_c_account = env.deposit_account(env.usd)
    usd_d, usd_d_account = env.deposit_account(env.usd)
    _, usd_a_account = env.deposit_account(env.usd, address=eth_a)  # one address, two assets
    env.token.mint(env.node.accounts[0], 10**12)
    watcher, store = env.watcher(), env.store()

    env.node.automine(False)
    env.node.send_eth(1, eth_a, 2 * ETHER)
    env.node.send_eth(2, eth_b, 3 * ETHER)
    env.node.send_eth(3, eth_a, 5)
    env.node.send_eth(4, random_address(), ETHER)  # not watched
    env.token.transfer(0, usd_c, 1_000_000)
    batch = env.token.batch_transfer(0, [(usd_c, 10), (usd_d, 20), (eth_a, 30), (usd_c, 40), (random_address(), 7)])
    env.node.mine(1)
    env.node.automine(True)
    block = int(env.node.receipt(batch)["blockNumber"])

    env.sync(watcher, store)
    seen = env.deposits(account_id=usd_c_account)
    assert len(seen) == 3 and {d.state for d in seen} == {chain_pb2.SEEN}
    assert {d.block_number for d in seen} == {block} and {d.confirmations for d in seen} == {1}
    assert sorted(d.position for d in seen if d.tx_hash == batch) == ["log:0", "log:3"]
    assert env.balance(usd_c_account) == 0

    env.node.mine(1)
    env.sync(watcher, store)
    assert {d.confirmations for d in env.deposits(account_id=usd_c_account)} == {2}
    assert env.balance(eth_a_account) == 0, "credited before N confirmations"

    env.node.mine(1)
    env.sync(watcher, store)
    expected = {
        eth_a_account: 2 * ETHER + 5, eth_b_account: 3 * ETHER, usd_c_account: 1_000_050,
        usd_d_account: 20, usd_a_account: 30,
    }
    for account, amount in expected.items():
        assert env.balance(account) == amount
        assert {d.state for d in env.deposits(account_id=account)} == {chain_pb2.CREDITED}
    assert [d.position for d in env.deposits(address=usd_d)] == ["log:1"]

    credits = env.credits_by_request_id()
    assert len(credits) == 8 and set(credits.values()) == {1}

    # A restart, a second watcher and a replay of a credit change nothing.
    other = env.watcher()
    env.node.mine(2)
    env.sync(other, env.store())
    env.sync(watcher, store)
    deposit = env.deposits(address=usd_d)[0]
    replay = env.stub.CreateTransfer(pb.CreateTransferRequest(
        request_id=deposit.request_id, debit_account_id=env.omnibus[env.usd], credit_account_id=usd_d_account,
        amount="20", asset=env.usd,
        metadata={"source": "chain_deposit", "chain_id": str(env.chain_id), "tx_hash": deposit.tx_hash,
                  "position": deposit.position},
    ))
    assert replay.id == deposit.credit_transfer_id
    assert env.credits_by_request_id() == credits
    for account, amount in expected.items():
        assert env.balance(account) == amount
    assert_ledger_consistent(env.database_url)


def test_shallow_reorg_drops_the_unconfirmed_deposit_and_credits_the_new_branch(env: ChainEnv) -> None:
    orphan_address, orphan_account = env.deposit_account(env.eth)
    new_address, new_account_id = env.deposit_account(env.eth)
    moved_address, moved_account = env.deposit_account(env.eth)
    watcher, store = env.watcher(), env.store()

    moved_raw = env.node.signed_eth(3, moved_address, 700, env.node.key_nonce(3))
    env.node.rpc("eth_sendRawTransaction", [moved_raw])
    env.node.send_eth(1, orphan_address, ETHER)
    env.sync(watcher, store)
    assert states(env, orphan_account) == [chain_pb2.SEEN]
    moved_before = env.deposits(account_id=moved_account)[0]

    replacement = env.node.signed_eth(2, new_address, 4 * ETHER, env.node.key_nonce(2))
    env.node.reorg(2, [(replacement, 0), (moved_raw, 1)])  # shallower than the 3 confirmations
    env.sync(watcher, store)
    assert states(env, orphan_account) == [chain_pb2.ORPHANED]
    moved_after = env.deposits(account_id=moved_account)[0]
    assert moved_after.state == chain_pb2.SEEN and moved_after.block_hash != moved_before.block_hash

    env.node.mine(3)
    env.sync(watcher, store)
    assert env.balance(orphan_account) == 0
    assert states(env, orphan_account) == [chain_pb2.ORPHANED]
    assert env.balance(new_account_id) == 4 * ETHER
    assert env.balance(moved_account) == 700
    assert states(env, moved_account) == [chain_pb2.CREDITED]
    assert set(env.credits_by_request_id().values()) == {1}
    assert env.alerts() == []
    assert watcher.metrics.reorgs._value.get() == 1
    assert_ledger_consistent(env.database_url)


def test_deep_reorg_reverses_a_credited_deposit_and_raises_an_alert(env: ChainEnv) -> None:
    address, account = env.deposit_account(env.eth)
    watcher, store = env.watcher(), env.store()
    tx_hash = env.node.send_eth(1, address, 3 * ETHER)
    env.node.mine(3)
    env.sync(watcher, store)
    assert env.balance(account) == 3 * ETHER
    credit_id = env.deposits(account_id=account)[0].credit_transfer_id

    env.node.reorg(5)  # deeper than the 3 confirmations; the deposit is not in the new branch
    env.sync(watcher, store)
    deposit = env.deposits(account_id=account)[0]
    assert deposit.state == chain_pb2.REVERSED and deposit.tx_hash == tx_hash
    assert env.balance(account) == 0
    reversal = env.stub.GetTransfer(pb.GetTransferRequest(id=deposit.reversal_transfer_id))
    assert reversal.kind == pb.REVERSAL and reversal.reverses_transfer_id == credit_id
    alerts = env.alerts()
    assert [a.kind for a in alerts] == ["deep_reorg_reversal"]
    assert alerts[0].details["amount"] == str(3 * ETHER)
    assert watcher.metrics.alerts.labels("deep_reorg_reversal")._value.get() == 1
    assert_ledger_consistent(env.database_url)


def test_deep_reorg_holds_what_is_left_when_the_account_no_longer_covers_the_reversal(env: ChainEnv) -> None:
    address, account = env.deposit_account(env.eth)
    elsewhere = new_account(env.stub, env.eth)
    watcher, store = env.watcher(), env.store()
    env.node.send_eth(1, address, 1000)
    env.node.mine(3)
    env.sync(watcher, store)
    transfer(env.stub, account, elsewhere.id, 700, env.eth)  # the customer spent most of it

    env.node.reorg(5)
    env.sync(watcher, store)
    deposit = env.deposits(account_id=account)[0]
    assert deposit.state == chain_pb2.HELD
    hold = env.stub.GetTransfer(pb.GetTransferRequest(id=deposit.reversal_transfer_id))
    assert hold.state == pb.PENDING and hold.amount == "300" and hold.debit_account_id == account
    alert = env.alerts()[0]
    assert alert.kind == "deep_reorg_hold"
    assert (alert.details["held"], alert.details["shortfall"]) == ("300", "700")
    available = env.stub.GetAccount(pb.GetAccountRequest(id=account))
    assert int(available.credits_posted) - int(available.debits_posted) - int(available.debits_pending) == 0
    assert_ledger_consistent(env.database_url)


def test_reversed_deposit_mined_again_is_credited_again_once(env: ChainEnv) -> None:
    address, account = env.deposit_account(env.eth)
    watcher, store = env.watcher(), env.store()
    raw = env.node.signed_eth(2, address, 900, env.node.key_nonce(2))
    env.node.rpc("eth_sendRawTransaction", [raw])
    env.node.mine(3)
    env.sync(watcher, store)
    env.node.reorg(5)
    env.sync(watcher, store)
    assert env.balance(account) == 0
    env.node.rpc("eth_sendRawTransaction", [raw])  # the same transaction mined again later
    env.node.mine(3)
    env.sync(watcher, store)
    deposit = env.deposits(account_id=account)[0]
    assert deposit.state == chain_pb2.CREDITED and deposit.request_id.endswith(":credit1")
    assert env.balance(account) == 900
    assert_ledger_consistent(env.database_url)


def test_deposit_rpcs_refuse_bad_filters(env: ChainEnv) -> None:
    import grpc

    from tests.ledger_api import error_reason

    for request in (
        chain_pb2.ListChainDepositsRequest(),
        chain_pb2.ListChainDepositsRequest(account_id=rid(), address=random_address()),
        chain_pb2.ListChainDepositsRequest(address="0x1234"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            env.stub.ListChainDeposits(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(caught.value) in {"MISSING_FIELD", "INVALID_ID", "INVALID_CHAIN_ADDRESS"}


def test_two_watchers_without_leadership_still_credit_each_deposit_once(env: ChainEnv) -> None:
    """Defence in depth: even if two watchers wrote at once (leadership normally prevents it), the
    guarded checkpoint and the deterministic request ids keep every credit single."""
    targets = [env.deposit_account(env.eth) for _ in range(3)]
    expected = dict.fromkeys((account for _, account in targets), 0)
    stop = threading.Event()
    conflicts: list[str] = []

    def run(watcher: Watcher, store: DepositStore) -> None:
        while not stop.is_set():
            try:
                watcher.work(store)
            except (StaleCheckpointError, ChainMovedError) as error:
                conflicts.append(type(error).__name__)

    threads = [threading.Thread(target=run, args=(env.watcher(), env.store()), daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for round_number in range(12):
            address, account = targets[round_number % 3]
            env.node.send_eth(1 + round_number % 4, address, 1000 + round_number)
            expected[account] += 1000 + round_number
            time.sleep(0.05)
        env.node.mine(env.confirmations)
        deadline = time.monotonic() + 30
        while any(env.balance(a) != amount for a, amount in expected.items()):
            assert time.monotonic() < deadline, {a: env.balance(a) for a in expected}
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    credits = env.credits_by_request_id()
    assert len(credits) == 12 and set(credits.values()) == {1}
    assert_ledger_consistent(env.database_url)


def test_a_deposit_the_ledger_cannot_hold_is_rejected_with_an_alert(env: ChainEnv) -> None:
    address, account = env.deposit_account(env.usd)
    huge = 2**130  # a valid uint256, above the ledger's 2^128-1
    env.token.mint(address, huge)
    env.token.mint(address, 5)
    env.node.mine(3)
    watcher, store = env.watcher(), env.store()
    env.sync(watcher, store)
    by_amount = {d.amount: d for d in env.deposits(account_id=account)}
    assert by_amount[str(huge)].state == chain_pb2.REJECTED
    assert by_amount["5"].state == chain_pb2.CREDITED and env.balance(account) == 5
    alert = env.alerts()[0]
    assert alert.kind == "credit_rejected" and alert.details["reason"] == "INVALID_AMOUNT"


def test_the_watcher_command_refuses_a_node_of_another_chain(env: ChainEnv) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ledger_chain.watcher_main", "--rpc-url", env.node.url,
         "--chain-id", str(env.chain_id + 1), "--ledger-target", env.ledger_target, "--database-url", env.database_url],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "serves chain" in done.stderr
