"""`ledger-chain-signer` as a real process, SIGKILLed at random points while it sends a run of
withdrawals: no nonce reused or skipped, each withdrawal sent and posted once; and the hot wallet
key from an encrypted keystore."""

from __future__ import annotations

import os
import pathlib
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from eth_account import Account

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger_chain.hot_wallet import KeyUnavailableError, load_hot_wallet, write_keystore
from ledger_server.server import LedgerServer
from tests.chain_env import ChainEnv, SignerEnv, random_address
from tests.conftest import ADMIN_KEY, ROOT
from tests.invariants import assert_ledger_consistent

pytestmark = pytest.mark.timeout(180)
ETHER = 10**18


@pytest.fixture
def env(stub: ledger_pb2_grpc.LedgerStub, database_url: str, ledger_server: LedgerServer) -> Iterator[ChainEnv]:
    chain = ChainEnv(stub, database_url, ledger_server.target, confirmations=2)
    yield chain
    chain.close()


def start_signer(env: ChainEnv, key_hex: str, log_path: pathlib.Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "ledger_chain.signer_main", "--rpc-url", env.node.url,
             "--chain-id", str(env.chain_id), "--ledger-target", env.ledger_target, "--poll-interval", "0.1",
             "--backoff-max", "2"],
            env={**os.environ, "LEDGER_DATABASE_URL": env.database_url, "LEDGER_SIGNER_PRIVATE_KEY": key_hex,
                 "LEDGER_API_KEY": ADMIN_KEY},
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file,
        )


def test_signer_killed_at_random_points_never_reuses_or_skips_a_nonce(
    env: ChainEnv, tmp_path: pathlib.Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}")
    hot = SignerEnv(env)  # funds the wallet; its in-process signer is not used here
    customer = hot.customer(env.eth, 100 * ETHER)
    usd_customer = hot.customer(env.usd, 10**9)
    planned = []
    for index in range(8):
        to, amount = random_address(), rng.randint(1, 10**6)
        asset, account = (env.eth, customer) if index % 2 == 0 else (env.usd, usd_customer)
        planned.append((hot.withdraw(account, asset, amount, to=to), asset, to, amount))

    mining = threading.Event()

    def miner() -> None:
        while not mining.wait(0.15):
            env.node.mine(1)

    miner_thread = threading.Thread(target=miner, daemon=True)
    miner_thread.start()
    key_hex = "0x" + bytes(hot.wallet.key).hex()
    log_path = tmp_path / "signer.log"
    process = start_signer(env, key_hex, log_path)
    kills = 0
    try:
        for _ in range(6):
            time.sleep(rng.uniform(0.4, 1.6))
            process.kill()
            process.wait(timeout=10)
            kills += 1
            process = start_signer(env, key_hex, log_path)
        deadline = time.monotonic() + 90
        while True:
            states = [hot.get(w.id).state for w, *_ in planned]
            if all(s == chain_pb2.WITHDRAWAL_POSTED for s in states):
                break
            assert time.monotonic() < deadline, (states, log_path.read_text()[-3000:])
            time.sleep(0.2)
    finally:
        process.kill()
        process.wait(timeout=10)
        mining.set()
        miner_thread.join(timeout=5)

    final = [hot.get(w.id) for w, *_ in planned]
    assert sorted(w.nonce for w in final) == list(range(8))
    assert env.node.w3.eth.get_transaction_count(hot.wallet.address) == 8 == hot.next_nonce()
    for withdrawal, (_, asset, to, amount) in zip(final, planned, strict=True):
        assert env.node.receipt(withdrawal.tx_hash)["status"] == 1
        if asset == env.eth:
            assert env.node.w3.eth.get_balance(env.node.w3.to_checksum_address(to)) == amount
        else:
            assert env.token.balance(to) == amount
    print(f"8 withdrawals, {kills} SIGKILLs: nonces 0..7, each sent and posted once")
    assert_ledger_consistent(env.database_url)


def test_the_hot_wallet_key_comes_from_an_encrypted_keystore(tmp_path: pathlib.Path) -> None:
    account = Account.create()
    path = tmp_path / "hot.json"
    write_keystore(account, "correct horse", path, scrypt_n=2**12)  # a cheap cost for the test
    assert account.key.hex()[2:] not in path.read_text()
    assert load_hot_wallet(str(path), "correct horse", None).address == account.address
    with pytest.raises(KeyUnavailableError):
        load_hot_wallet(str(path), "wrong", None)
    with pytest.raises(KeyUnavailableError):
        load_hot_wallet(str(path), None, None)
    with pytest.raises(KeyUnavailableError):
        load_hot_wallet(None, None, None)
    assert load_hot_wallet(None, None, "0x" + bytes(account.key).hex()).address == account.address
