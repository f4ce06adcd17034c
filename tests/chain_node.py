"""A real local Ethereum node for the chain tests: anvil from chain/testnode (installed by
scripts/test.sh), on loopback, plus the ERC-20 test token and a few JSON-RPC helpers."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
from typing import Any

from eth_account import Account
from eth_typing import HexStr
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, Wei

from tests.conftest import ROOT, free_port

TESTNODE = ROOT / "chain" / "testnode" / "node_modules"
ANVIL_CANDIDATES = (
    TESTNODE / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
    TESTNODE / "@foundry-rs" / "anvil-linux-arm64" / "bin" / "anvil",
    TESTNODE / "@foundry-rs" / "anvil-darwin-arm64" / "bin" / "anvil",
    TESTNODE / "@foundry-rs" / "anvil-darwin-amd64" / "bin" / "anvil",
)
TOKEN_ARTIFACT = ROOT / "chain" / "contracts" / "TestToken.json"
def anvil_binary() -> pathlib.Path:
    for candidate in ANVIL_CANDIDATES:
        if candidate.exists():
            return candidate
    raise RuntimeError(
        "anvil is not installed: run scripts/test.sh, or "
        "npm install --prefix chain/testnode --no-audit --no-fund @foundry-rs/anvil@1.7.1"
    )


class Anvil:
    """One anvil process (its own port and chain id)."""

    def __init__(self, chain_id: int, extra_args: tuple[str, ...] = ()) -> None:
        self.chain_id = chain_id
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(chain_id),
             "--silent", "--accounts", "5", *extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 10}))
        deadline = time.monotonic() + 20
        while True:
            try:
                self.w3.eth.block_number  # noqa: B018 - a readiness probe
                break
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"anvil did not start: {err[-2000:]}") from None
                time.sleep(0.05)
        self.accounts: list[str] = list(self.w3.eth.accounts)  # unlocked by anvil: eth_sendTransaction
        # Local keys for raw transactions (anvil_reorg takes signed ones), funded here.
        self.keys = [Account.create() for _ in range(5)]
        for key in self.keys:
            self.rpc("anvil_setBalance", [key.address, hex(10_000 * 10**18)])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        response = self.w3.provider.make_request(RPCEndpoint(method), params or [])
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    # -- blocks -----------------------------------------------------------------------------------

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def automine(self, enabled: bool) -> None:
        self.rpc("evm_setAutomine", [enabled])

    def reorg(self, depth: int, transactions: list[tuple[str, int]] | None = None) -> None:
        """Replace the last `depth` blocks with as many new ones; (raw tx hex, block offset) go in them."""
        self.rpc("anvil_reorg", [depth, [[raw, offset] for raw, offset in transactions or []]])

    # -- transactions -----------------------------------------------------------------------------

    def send_eth(self, sender: int, to: str, value: int) -> str:
        tx_hash = self.w3.eth.send_transaction({
            "from": self.accounts[sender], "to": Web3.to_checksum_address(to), "value": Wei(value),
        })
        return "0x" + bytes(tx_hash).hex()

    def signed_eth(self, key: int, to: str, value: int, nonce: int) -> str:
        """A signed raw transfer from local key `key` (for anvil_reorg), not sent."""
        tx = {
            "to": Web3.to_checksum_address(to), "value": value, "nonce": nonce, "gas": 21_000,
            "maxFeePerGas": 50 * 10**9, "maxPriorityFeePerGas": 10**9, "chainId": self.chain_id, "type": 2,
        }
        signed = self.keys[key].sign_transaction(tx)
        return "0x" + bytes(signed.raw_transaction).hex()

    def key_nonce(self, key: int) -> int:
        return int(self.w3.eth.get_transaction_count(self.keys[key].address, "pending"))

    def receipt(self, tx_hash: str) -> Any:
        return self.w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=10)


class Token:
    """The ERC-20 test token (chain/contracts/TestToken.sol), deployed by dev account 0."""

    def __init__(self, node: Anvil, decimals: int = 6) -> None:
        artifact = json.loads(TOKEN_ARTIFACT.read_text())
        self.node = node
        factory = node.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx_hash = factory.constructor("Test Dollar", "TUSD", decimals).transact({"from": node.accounts[0]})
        self.address = str(node.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["contractAddress"]).lower()
        self.contract = node.w3.eth.contract(address=Web3.to_checksum_address(self.address), abi=artifact["abi"])

    def _send(self, sender: int, call: Any) -> str:
        tx_hash = call.transact({"from": self.node.accounts[sender]})
        return "0x" + bytes(tx_hash).hex()

    def mint(self, to: str, value: int) -> str:
        return self._send(0, self.contract.functions.mint(Web3.to_checksum_address(to), value))

    def transfer(self, sender: int, to: str, value: int) -> str:
        return self._send(sender, self.contract.functions.transfer(Web3.to_checksum_address(to), value))

    def batch_transfer(self, sender: int, transfers: list[tuple[str, int]]) -> str:
        return self._send(sender, self.contract.functions.batchTransfer(
            [Web3.to_checksum_address(t) for t, _ in transfers], [v for _, v in transfers]
        ))

    def set_blocked(self, account: str, value: bool) -> str:
        return self._send(0, self.contract.functions.setBlocked(Web3.to_checksum_address(account), value))

    def balance(self, account: str) -> int:
        return int(self.contract.functions.balanceOf(Web3.to_checksum_address(account)).call())
