"""One chain test environment: an anvil node with the test token, both registered with a running
ledger (a chain id of their own, so tests sharing a database never see each other's state)."""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import psycopg
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_chain import leadership
from ledger_chain.deposit_store import DepositStore
from ledger_chain.ledger_gateway import LedgerGateway
from ledger_chain.node import EthNode
from ledger_chain.signer import Signer, SignerConfig
from ledger_chain.watcher import Watcher, WatcherConfig
from ledger_chain.withdrawal_store import WithdrawalStore
from tests.chain_node import Anvil, Token
from tests.conftest import ADMIN_KEY
from tests.ledger_api import new_account, new_asset, rid

WORK_STEPS_MAX = 500


def random_address() -> str:
    return "0x" + os.urandom(20).hex()


class ChainEnv:
    def __init__(
        self, stub: ledger_pb2_grpc.LedgerStub, database_url: str, ledger_target: str, confirmations: int = 3,
        anvil_args: tuple[str, ...] = (),
    ) -> None:
        self.stub = stub
        self.database_url = database_url
        self.ledger_target = ledger_target
        self.chain_id = random.randint(100_000, 2**31 - 1)
        self.confirmations = confirmations
        self.node = Anvil(self.chain_id, anvil_args)
        self.token = Token(self.node)
        self.eth = new_asset(stub, scale=18)
        self.usd = new_asset(stub, scale=6)
        self.omnibus: dict[str, str] = {}
        for asset, contract in ((self.eth, ""), (self.usd, self.token.address)):
            registered: chain_pb2.ChainAsset = stub.RegisterChainAsset(chain_pb2.RegisterChainAssetRequest(
                request_id=rid("chain-asset"), chain_id=self.chain_id, asset=asset, contract_address=contract,
                decimals=18 if asset == self.eth else 6, confirmations=confirmations,
            ))
            self.omnibus[asset] = registered.omnibus_account_id
        self._connections: list[psycopg.Connection[Any]] = []
        self._gateways: list[LedgerGateway] = []

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        for gateway in self._gateways:
            gateway.close()
        self.node.stop()

    # -- ledger side ------------------------------------------------------------------------------

    def deposit_account(self, asset: str, address: str | None = None) -> tuple[str, str]:
        """A customer account (no overdraft) and a deposit address paying into it."""
        account = new_account(self.stub, asset, no_overdraft=True)
        address = address or random_address()
        self.stub.RegisterDepositAddress(chain_pb2.RegisterDepositAddressRequest(
            request_id=rid("deposit-address"), chain_id=self.chain_id, address=address, account_id=account.id,
        ))
        return address, account.id

    def balance(self, account_id: str) -> int:
        account: pb.Account = self.stub.GetAccount(pb.GetAccountRequest(id=account_id))
        return int(account.credits_posted) - int(account.debits_posted)

    def deposits(self, *, account_id: str = "", address: str = "") -> list[chain_pb2.ChainDeposit]:
        found: chain_pb2.ListChainDepositsResponse = self.stub.ListChainDeposits(chain_pb2.ListChainDepositsRequest(
            account_id=account_id, address=address, chain_id=self.chain_id, page_size=1000,
        ))
        return list(found.deposits)

    def alerts(self) -> list[chain_pb2.ChainAlert]:
        found: chain_pb2.ListChainAlertsResponse = self.stub.ListChainAlerts(
            chain_pb2.ListChainAlertsRequest(chain_id=self.chain_id, page_size=1000)
        )
        return list(found.alerts)

    def credits_by_request_id(self) -> dict[str, int]:
        """How many ledger transfers each deposit request id of this chain produced (must be 1)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT request_id, count(*) FROM transfers WHERE request_id LIKE %s GROUP BY request_id",
                (f"chain:{self.chain_id}:%",),
            ).fetchall()
        return {r: n for r, n in rows}

    # -- watcher side -----------------------------------------------------------------------------

    def watcher(self, **config: Any) -> Watcher:
        gateway = LedgerGateway(self.ledger_target, ADMIN_KEY)
        self._gateways.append(gateway)
        settings: dict[str, Any] = {"start_block": 0, "keep_blocks": 64, **config}
        return Watcher(WatcherConfig(chain_id=self.chain_id, **settings), EthNode(self.node.url), gateway)

    def store(self) -> DepositStore:
        conn = leadership.connect(self.database_url, "chain-test")
        self._connections.append(conn)
        return DepositStore(conn, self.chain_id)

    def sync(self, watcher: Watcher, store: DepositStore) -> None:
        """Work until the watcher is at the node's head with nothing left to do."""
        for _ in range(WORK_STEPS_MAX):
            if not watcher.work(store):
                return
        raise AssertionError("the watcher did not catch up")


class SignerEnv:
    """A hot wallet (funded on chain) and its signer, driven one unit of work at a time."""

    def __init__(self, env: ChainEnv, **config: Any) -> None:
        self.env = env
        self.wallet: LocalAccount = Account.create()
        env.node.rpc("anvil_setBalance", [self.wallet.address, hex(100 * 10**18)])
        env.token.mint(self.wallet.address, 10**12)
        gateway = LedgerGateway(env.ledger_target, ADMIN_KEY)
        env._gateways.append(gateway)
        settings: dict[str, Any] = {"poll_interval_s": 0.05, "stuck_after_s": 3600, "drop_after_s": 3600, **config}
        self.signer = Signer(SignerConfig(chain_id=env.chain_id, **settings), EthNode(env.node.url), gateway,
                             self.wallet)
        self.store = self.new_store()

    def new_store(self) -> WithdrawalStore:
        conn = leadership.connect(self.env.database_url, "chain-test-signer")
        self.env._connections.append(conn)
        return WithdrawalStore(conn, self.env.chain_id)

    def customer(self, asset: str, amount: int) -> str:
        """A no-overdraft account holding `amount` (credited from the omnibus, like a deposit)."""
        account = new_account(self.env.stub, asset, no_overdraft=True)
        self.env.stub.CreateTransfer(pb.CreateTransferRequest(
            request_id=rid("fund"), debit_account_id=self.env.omnibus[asset], credit_account_id=account.id,
            amount=str(amount), asset=asset,
        ))
        return account.id

    def withdraw(self, account_id: str, asset: str, amount: int, to: str | None = None,
                 request_id: str | None = None) -> chain_pb2.Withdrawal:
        created: chain_pb2.Withdrawal = self.env.stub.CreateWithdrawal(chain_pb2.CreateWithdrawalRequest(
            request_id=request_id or rid("withdrawal"), account_id=account_id, chain_id=self.env.chain_id,
            to_address=to or random_address(), asset=asset, amount=str(amount),
        ))
        return created

    def get(self, withdrawal_id: str) -> chain_pb2.Withdrawal:
        found: chain_pb2.Withdrawal = self.env.stub.GetWithdrawal(chain_pb2.GetWithdrawalRequest(id=withdrawal_id))
        return found

    def work(self, times: int = 1) -> None:
        for _ in range(times):
            self.signer.work(self.store)

    def settle(self, withdrawal_id: str, steps_max: int = 50) -> chain_pb2.Withdrawal:
        """Work and mine until the withdrawal is final (POSTED, FAILED or REJECTED)."""
        for _ in range(steps_max):
            self.signer.work(self.store)
            found = self.get(withdrawal_id)
            if found.state in (chain_pb2.WITHDRAWAL_POSTED, chain_pb2.WITHDRAWAL_FAILED,
                               chain_pb2.WITHDRAWAL_REJECTED):
                return found
            self.env.node.mine(1)
        raise AssertionError(f"withdrawal {withdrawal_id} did not settle: {self.get(withdrawal_id)}")

    def next_nonce(self) -> int:
        return self.store.next_nonce(self.wallet.address.lower())


def deposit_key(deposit: chain_pb2.ChainDeposit) -> tuple[str, str]:
    return deposit.tx_hash, deposit.position


def new_request_id() -> str:
    return f"test-{uuid.uuid4().hex}"
