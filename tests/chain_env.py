"""One chain test environment: an anvil node with the test token, both registered with a running
ledger (a chain id of their own, so tests sharing a database never see each other's state)."""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import psycopg

from ledger.v1 import chain_pb2, ledger_pb2_grpc
from ledger.v1 import ledger_pb2 as pb
from ledger_chain import leadership
from ledger_chain.deposit_store import DepositStore
from ledger_chain.ledger_gateway import LedgerGateway
from ledger_chain.node import EthNode
from ledger_chain.watcher import Watcher, WatcherConfig
from tests.chain_node import Anvil, Token
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
        gateway = LedgerGateway(self.ledger_target)
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


def deposit_key(deposit: chain_pb2.ChainDeposit) -> tuple[str, str]:
    return deposit.tx_hash, deposit.position


def new_request_id() -> str:
    return f"test-{uuid.uuid4().hex}"
