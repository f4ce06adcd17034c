"""Withdrawals against a real anvil node: held, sent, confirmed and posted; voided when they would
revert, revert on chain, are dropped or lose their nonce; fee bumps; the nonce manager across a
restart mid-send. The signer runs in-process, one unit of work at a time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from eth_account import Account
from web3.types import TxParams, Wei

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_chain.signer import Signer
from ledger_server.chain_validation import CreateWithdrawal
from ledger_server.server import LedgerServer
from tests.chain_env import ChainEnv, SignerEnv, random_address
from tests.invariants import assert_ledger_consistent
from tests.ledger_api import error_reason, rid

pytestmark = pytest.mark.timeout(120)
ETHER = 10**18
GWEI = 10**9


@pytest.fixture
def env(stub: ledger_pb2_grpc.LedgerStub, database_url: str, ledger_server: LedgerServer) -> Iterator[ChainEnv]:
    chain = ChainEnv(stub, database_url, ledger_server.target, confirmations=2)
    yield chain
    chain.close()


def account_of(env: ChainEnv, account_id: str) -> pb.Account:
    found: pb.Account = env.stub.GetAccount(pb.GetAccountRequest(id=account_id))
    return found


def test_withdrawals_are_held_sent_confirmed_and_posted(env: ChainEnv) -> None:
    hot = SignerEnv(env)
    eth_customer = hot.customer(env.eth, 5 * ETHER)
    usd_customer = hot.customer(env.usd, 1_000_000)
    eth_to, usd_to = random_address(), random_address()
    request_id = rid("withdrawal")
    eth_withdrawal = hot.withdraw(eth_customer, env.eth, 2 * ETHER, to=eth_to, request_id=request_id)
    usd_withdrawal = hot.withdraw(usd_customer, env.usd, 250_000, to=usd_to)
    assert eth_withdrawal.state == chain_pb2.WITHDRAWAL_HELD
    held = account_of(env, eth_customer)
    assert (held.debits_pending, held.debits_posted) == (str(2 * ETHER), "0")

    # Idempotent like every mutation: a retry replays, another payload under the id is refused.
    replay, call = env.stub.CreateWithdrawal.with_call(chain_pb2.CreateWithdrawalRequest(
        request_id=request_id, account_id=eth_customer, chain_id=env.chain_id, to_address=eth_to, asset=env.eth,
        amount=str(2 * ETHER),
    ))
    assert replay.id == eth_withdrawal.id and ("ledger-replayed", "true") in call.trailing_metadata()
    with pytest.raises(grpc.RpcError) as reused:
        hot.withdraw(eth_customer, env.eth, 3 * ETHER, to=eth_to, request_id=request_id)
    assert error_reason(reused.value) == "IDEMPOTENCY_KEY_REUSED"

    hot.work()  # signed, sent, and (anvil mines at once) seen mined with 1 confirmation of 2
    sent = hot.get(eth_withdrawal.id)
    assert sent.state == chain_pb2.WITHDRAWAL_MINED and sent.has_nonce and sent.tx_hash
    assert account_of(env, eth_customer).debits_posted == "0", "posted before N confirmations"

    final = [hot.settle(w.id) for w in (eth_withdrawal, usd_withdrawal)]
    assert [w.state for w in final] == [chain_pb2.WITHDRAWAL_POSTED] * 2
    assert sorted(w.nonce for w in final) == [0, 1] and hot.next_nonce() == 2
    assert env.node.w3.eth.get_balance(env.node.w3.to_checksum_address(eth_to)) == 2 * ETHER
    assert env.token.balance(usd_to) == 250_000
    posted = account_of(env, eth_customer)
    assert (posted.debits_pending, posted.debits_posted) == ("0", str(2 * ETHER))
    hold = env.stub.GetTransfer(pb.GetTransferRequest(id=final[0].hold_id))
    assert hold.state == pb.POSTED
    receipt = env.node.receipt(final[0].tx_hash)
    assert receipt["status"] == 1
    assert_ledger_consistent(env.database_url)


def test_a_withdrawal_beyond_the_balance_is_rejected_and_nothing_is_sent(env: ChainEnv) -> None:
    hot = SignerEnv(env)
    customer = hot.customer(env.eth, ETHER)
    request_id, to = rid("withdrawal"), random_address()
    for _ in range(2):  # the refusal is final: a retry replays it
        with pytest.raises(grpc.RpcError) as refused:
            hot.withdraw(customer, env.eth, 2 * ETHER, to=to, request_id=request_id)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(refused.value) == "INSUFFICIENT_FUNDS"
    found = env.stub.GetWithdrawal(chain_pb2.GetWithdrawalRequest(request_id=request_id))
    assert found.state == chain_pb2.WITHDRAWAL_REJECTED
    hot.work()
    assert hot.next_nonce() == 0
    with pytest.raises(grpc.RpcError) as bad:
        hot.withdraw(customer, env.eth, 1, to="0x" + "0" * 40)
    assert error_reason(bad.value) == "INVALID_CHAIN_ADDRESS"


def test_a_withdrawal_that_would_revert_is_voided_without_using_a_nonce(env: ChainEnv) -> None:
    hot = SignerEnv(env)
    customer = hot.customer(env.usd, 10**13)
    withdrawal = hot.withdraw(customer, env.usd, 5 * 10**12)  # more tokens than the hot wallet has
    final = hot.settle(withdrawal.id)
    assert final.state == chain_pb2.WITHDRAWAL_FAILED and "would fail" in final.failure_reason
    assert not final.has_nonce and hot.next_nonce() == 0
    assert env.stub.GetTransfer(pb.GetTransferRequest(id=final.hold_id)).state == pb.VOIDED
    restored = account_of(env, customer)
    assert (restored.debits_pending, restored.debits_posted) == ("0", "0")
    assert_ledger_consistent(env.database_url)


def test_a_withdrawal_reverted_on_chain_is_voided(env: ChainEnv) -> None:
    hot = SignerEnv(env)
    customer = hot.customer(env.usd, 1_000)
    withdrawal = hot.withdraw(customer, env.usd, 600)
    env.node.automine(False)
    hot.work()  # estimated fine, signed and sent: waiting in the pool
    assert hot.get(withdrawal.id).state == chain_pb2.WITHDRAWAL_SENT
    # The token blocks the hot wallet in the same block, ahead of the withdrawal (a higher tip).
    blocking: TxParams = {
        "from": env.node.accounts[0], "maxPriorityFeePerGas": Wei(100 * GWEI), "maxFeePerGas": Wei(300 * GWEI),
    }
    env.token.contract.functions.setBlocked(hot.wallet.address, True).transact(blocking)
    env.node.mine(1)
    env.node.automine(True)
    final = hot.settle(withdrawal.id)
    assert final.state == chain_pb2.WITHDRAWAL_FAILED and "reverted" in final.failure_reason
    assert env.node.receipt(final.tx_hash)["status"] == 0
    assert account_of(env, customer).debits_pending == "0"
    assert env.stub.GetTransfer(pb.GetTransferRequest(id=final.hold_id)).state == pb.VOIDED
    assert hot.next_nonce() == 1  # the reverted transaction used its nonce; the next one follows it
    assert_ledger_consistent(env.database_url)


def test_a_dropped_withdrawal_is_cancelled_and_voided(env: ChainEnv) -> None:
    hot = SignerEnv(env, drop_after_s=0)
    customer = hot.customer(env.eth, 10 * ETHER)
    withdrawal = hot.withdraw(customer, env.eth, 5 * ETHER)
    env.node.automine(False)
    hot.work()
    sent = hot.get(withdrawal.id)
    assert sent.state == chain_pb2.WITHDRAWAL_SENT
    env.node.rpc("anvil_dropTransaction", [sent.tx_hash])  # gone from the pool, and it cannot come back:
    env.node.rpc("anvil_setBalance", [hot.wallet.address, hex(ETHER // 100)])  # the wallet lacks the value
    hot.work()  # re-broadcast refused for long enough: a cancellation fills the nonce
    env.node.automine(True)
    final = hot.settle(withdrawal.id)
    assert final.state == chain_pb2.WITHDRAWAL_FAILED and "dropped" in final.failure_reason
    assert final.tx_hash != sent.tx_hash and env.node.receipt(final.tx_hash)["status"] == 1
    assert env.node.w3.eth.get_transaction_count(hot.wallet.address) == 1 == hot.next_nonce()
    assert account_of(env, customer).debits_pending == "0"
    assert_ledger_consistent(env.database_url)


def test_a_nonce_used_outside_the_signer_voids_the_withdrawal_and_alerts(env: ChainEnv) -> None:
    hot = SignerEnv(env)
    customer = hot.customer(env.eth, 10 * ETHER)
    withdrawal = hot.withdraw(customer, env.eth, ETHER)
    env.node.automine(False)
    hot.work()
    sent = hot.get(withdrawal.id)
    env.node.rpc("anvil_dropTransaction", [sent.tx_hash])
    foreign = Account.sign_transaction({
        "to": env.node.accounts[0], "value": 1, "nonce": sent.nonce, "gas": 21_000, "maxFeePerGas": 50 * GWEI,
        "maxPriorityFeePerGas": GWEI, "chainId": env.chain_id, "type": 2,
    }, hot.wallet.key)
    env.node.rpc("eth_sendRawTransaction", ["0x" + bytes(foreign.raw_transaction).hex()])
    env.node.mine(1)
    env.node.automine(True)
    final = hot.settle(withdrawal.id)
    assert final.state == chain_pb2.WITHDRAWAL_FAILED and "did not send" in final.failure_reason
    assert "nonce_conflict" in [a.kind for a in env.alerts()]
    assert account_of(env, customer).debits_pending == "0"


def test_a_stuck_withdrawal_gets_a_fee_bump_and_the_replacement_is_mined(env: ChainEnv) -> None:
    hot = SignerEnv(env, stuck_after_s=1.0)
    customer = hot.customer(env.eth, 10 * ETHER)
    withdrawal = hot.withdraw(customer, env.eth, ETHER)
    env.node.automine(False)
    hot.work()
    first = hot.get(withdrawal.id).tx_hash
    time.sleep(1.1)
    hot.work()  # unmined past stuck_after_s: same nonce, +12.5% fees
    bumped = hot.get(withdrawal.id).tx_hash
    assert bumped != first
    attempts = hot.store.attempts(hot.store.withdrawals([4], 10)[0].id)
    assert len(attempts) == 2 and attempts[1].max_fee_per_gas > attempts[0].max_fee_per_gas * 11 // 10
    assert attempts[1].nonce == attempts[0].nonce
    env.node.mine(1)
    env.node.automine(True)
    final = hot.settle(withdrawal.id)
    assert final.state == chain_pb2.WITHDRAWAL_POSTED and final.tx_hash == bumped
    assert env.node.w3.eth.get_transaction_count(hot.wallet.address) == 1
    assert hot.signer.metrics.fee_bumps._value.get() == 1
    assert_ledger_consistent(env.database_url)


class CrashError(Exception):
    """Stands for the process dying between storing a signed transaction and broadcasting it."""


def test_the_nonce_manager_survives_a_restart_mid_send(env: ChainEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    hot = SignerEnv(env)
    customer = hot.customer(env.eth, 10 * ETHER)
    withdrawals = [hot.withdraw(customer, env.eth, ETHER) for _ in range(3)]

    def crash(*_: object) -> None:
        raise CrashError()

    monkeypatch.setattr(hot.signer.node, "send_raw", crash)
    with pytest.raises(CrashError):
        hot.work()  # the first withdrawal is SIGNED (nonce taken, transaction stored), never broadcast
    stored = hot.get(withdrawals[0].id)
    assert stored.state == chain_pb2.WITHDRAWAL_SIGNED and stored.nonce == 0 and hot.next_nonce() == 1

    restarted = SignerEnv.__new__(SignerEnv)  # a new process: fresh signer and connection, same wallet
    restarted.env, restarted.wallet = env, hot.wallet
    restarted.signer = Signer(hot.signer.config, hot.signer.node.__class__(env.node.url), hot.signer.gateway,
                              hot.wallet)
    restarted.store = restarted.new_store()
    final = [restarted.settle(w.id) for w in withdrawals]
    assert [w.state for w in final] == [chain_pb2.WITHDRAWAL_POSTED] * 3
    assert final[0].tx_hash == stored.tx_hash  # the stored bytes were sent, not a new transaction
    assert sorted(w.nonce for w in final) == [0, 1, 2]
    assert env.node.w3.eth.get_transaction_count(hot.wallet.address) == 3 == restarted.next_nonce()
    assert_ledger_consistent(env.database_url)


def test_a_withdrawal_abandoned_before_its_hold_is_finished_by_the_signer(env: ChainEnv) -> None:
    """CreateWithdrawal died after recording the request, before the hold: the signer places the
    hold (same request id as the server would use) and a retry of the call answers the result."""
    hot = SignerEnv(env, abandoned_after_s=0)
    customer = hot.customer(env.eth, 10 * ETHER)
    request_id, to = rid("withdrawal"), random_address()
    command = CreateWithdrawal(request_id, uuid.UUID(customer), env.chain_id, to, env.eth, ETHER)
    withdrawal_id = uuid.uuid4()
    with psycopg.connect(env.database_url) as conn:
        conn.execute(
            "INSERT INTO withdrawals (id, request_id, request_hash, account_id, chain_id, asset, to_address, amount,"
            " state, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, now(), now())",
            (withdrawal_id, request_id, command.request_hash(), customer, env.chain_id, env.eth, to, ETHER),
        )
    hot.work()
    held = hot.get(str(withdrawal_id))
    assert held.state in (chain_pb2.WITHDRAWAL_HELD, chain_pb2.WITHDRAWAL_MINED) and held.hold_id
    retried = hot.withdraw(customer, env.eth, ETHER, to=to, request_id=request_id)
    assert retried.id == str(withdrawal_id) and retried.hold_id == held.hold_id
    final = hot.settle(str(withdrawal_id))
    assert final.state == chain_pb2.WITHDRAWAL_POSTED
    assert account_of(env, customer).debits_posted == str(ETHER)
    assert_ledger_consistent(env.database_url)
