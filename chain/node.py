"""The Ethereum JSON-RPC client of the watcher and the signer (web3.py's HTTP provider underneath).

Results come back as small typed records; failures as three kinds the callers act on:
NodeUnavailableError (down, slow, overloaded: back off and retry), RangeTooLargeError (eth_getLogs refused
the block range: shrink it) and NodeError (an answer retrying will not change). web3's own retries
are disabled: the callers own the backoff and report it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import requests
from web3 import HTTPProvider
from web3.types import RPCEndpoint

RPC_TIMEOUT_S = 10.0
BATCH_MAX = 100  # requests per JSON-RPC batch
_RANGE_REFUSAL = re.compile(
    r"range|too many|too large|limit|exceed|10000|more than|response size|query timeout|timed out", re.I
)


class NodeUnavailableError(Exception):
    """The node did not answer usefully (connection refused, timeout, HTTP 5xx/429, server error)."""


class RangeTooLargeError(Exception):
    """eth_getLogs refused the block range (result or range limits of the node or provider)."""


class NodeError(Exception):
    """The node answered with an error that a retry will not fix."""


@dataclass(frozen=True)
class NativeTransfer:
    """A transaction of a block as far as native value is concerned."""

    tx_hash: str
    from_address: str
    to_address: str  # "" for contract creation
    value: int


@dataclass(frozen=True)
class Header:
    number: int
    hash: str
    parent_hash: str
    transactions: tuple[NativeTransfer, ...]  # empty unless requested with full transactions
    base_fee_per_gas: int


@dataclass(frozen=True)
class Log:
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str
    topics: tuple[str, ...]
    data: str


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    log_indexes: tuple[int, ...]  # block-level logIndex of each of the transaction's logs, in order
    from_address: str
    to_address: str


class SendOutcome(Enum):
    ACCEPTED = "accepted"
    ALREADY_KNOWN = "already_known"      # the node has it (a re-broadcast): fine
    NONCE_TOO_LOW = "nonce_too_low"      # that nonce is used: by this transaction or another one
    UNDERPRICED = "underpriced"          # a replacement must pay more
    INSUFFICIENT_FUNDS = "insufficient_funds"
    REJECTED = "rejected"


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _address(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _header(raw: dict[str, Any]) -> Header:
    transactions: list[NativeTransfer] = []
    for tx in raw.get("transactions", []):
        if isinstance(tx, dict):
            transactions.append(NativeTransfer(tx["hash"].lower(), _address(tx.get("from")), _address(tx.get("to")),
                                               _int(tx.get("value", "0x0"))))
    return Header(
        _int(raw["number"]), raw["hash"].lower(), raw["parentHash"].lower(), tuple(transactions),
        _int(raw.get("baseFeePerGas", "0x0")),
    )


def _log(raw: dict[str, Any]) -> Log:
    return Log(
        _int(raw["blockNumber"]), raw["blockHash"].lower(), raw["transactionHash"].lower(), _int(raw["logIndex"]),
        raw["address"].lower(), tuple(t.lower() for t in raw["topics"]), raw["data"],
    )


def _receipt(raw: dict[str, Any]) -> Receipt:
    return Receipt(
        raw["transactionHash"].lower(), _int(raw["blockNumber"]), raw["blockHash"].lower(),
        _int(raw.get("status", "0x1")), tuple(_int(entry["logIndex"]) for entry in raw.get("logs", [])),
        _address(raw.get("from")), _address(raw.get("to")),
    )


class EthNode:
    def __init__(self, rpc_url: str, timeout_s: float = RPC_TIMEOUT_S) -> None:
        self.rpc_url = rpc_url
        self._provider = HTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None,
        )

    # -- transport --------------------------------------------------------------------------------

    def _call(self, method: str, params: Sequence[Any]) -> Any:
        try:
            response = self._provider.make_request(RPCEndpoint(method), list(params))
        except (requests.RequestException, json.JSONDecodeError, ValueError, OSError) as error:
            raise NodeUnavailableError(f"{method}: {type(error).__name__}: {error}") from None
        return self._result(method, response)

    def _batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        assert len(calls) <= BATCH_MAX
        if not calls:
            return []
        try:
            responses = self._provider.make_batch_request([(RPCEndpoint(m), list(p)) for m, p in calls])
        except (requests.RequestException, json.JSONDecodeError, ValueError, OSError) as error:
            raise NodeUnavailableError(f"batch: {type(error).__name__}: {error}") from None
        if not isinstance(responses, list) or len(responses) != len(calls):
            raise NodeUnavailableError(f"batch: unexpected answer {str(responses)[:200]}")
        return [self._result(method, response) for (method, _), response in zip(calls, responses, strict=True)]

    @staticmethod
    def _result(method: str, response: Any) -> Any:
        if not isinstance(response, dict):
            raise NodeUnavailableError(f"{method}: malformed answer")
        error = response.get("error")
        if error is None:
            return response.get("result")
        code = error.get("code", 0) if isinstance(error, dict) else 0
        message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        if method == "eth_getLogs" and (code == -32005 or _RANGE_REFUSAL.search(message)):
            raise RangeTooLargeError(message)
        if code in (-32601, -32602, 3) or "revert" in message.lower():
            raise NodeError(f"{method}: {code} {message}")
        raise NodeUnavailableError(f"{method}: {code} {message}")

    # -- reads ------------------------------------------------------------------------------------

    def chain_id(self) -> int:
        return _int(self._call("eth_chainId", []))

    def block_number(self) -> int:
        return _int(self._call("eth_blockNumber", []))

    def header(self, number: int, full: bool = False) -> Header | None:
        raw = self._call("eth_getBlockByNumber", [hex(number), full])
        return None if raw is None else _header(raw)

    def latest_header(self) -> Header:
        raw = self._call("eth_getBlockByNumber", ["latest", False])
        if raw is None:
            raise NodeUnavailableError("no latest block")
        return _header(raw)

    def headers(self, first: int, last: int, full: bool = False) -> list[Header | None]:
        """Blocks first..last (None where the node has none), in batches of at most BATCH_MAX."""
        found: list[Header | None] = []
        for start in range(first, last + 1, BATCH_MAX):
            numbers = range(start, min(last, start + BATCH_MAX - 1) + 1)
            raws = self._batch([("eth_getBlockByNumber", [hex(n), full]) for n in numbers])
            found.extend(None if raw is None else _header(raw) for raw in raws)
        return found

    def logs(self, first: int, last: int, addresses: Sequence[str], topic0: str) -> list[Log]:
        raws = self._call("eth_getLogs", [{
            "fromBlock": hex(first), "toBlock": hex(last), "address": list(addresses), "topics": [topic0],
        }])
        return [_log(raw) for raw in raws or [] if not raw.get("removed", False)]

    def receipts(self, tx_hashes: Sequence[str]) -> list[Receipt | None]:
        found: list[Receipt | None] = []
        for start in range(0, len(tx_hashes), BATCH_MAX):
            raws = self._batch([("eth_getTransactionReceipt", [h]) for h in tx_hashes[start:start + BATCH_MAX]])
            found.extend(None if raw is None else _receipt(raw) for raw in raws)
        return found

    def receipt(self, tx_hash: str) -> Receipt | None:
        raw = self._call("eth_getTransactionReceipt", [tx_hash])
        return None if raw is None else _receipt(raw)

    def transaction_known(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (pending or mined)."""
        return self._call("eth_getTransactionByHash", [tx_hash]) is not None

    def nonce(self, address: str, block_tag: str = "latest") -> int:
        return _int(self._call("eth_getTransactionCount", [address, block_tag]))

    def balance(self, address: str) -> int:
        return _int(self._call("eth_getBalance", [address, "latest"]))

    def max_priority_fee(self) -> int:
        return _int(self._call("eth_maxPriorityFeePerGas", []))

    def estimate_gas(self, tx: dict[str, Any]) -> int:
        """Gas for the call; NodeError when it would revert."""
        return _int(self._call("eth_estimateGas", [tx]))

    # -- writes -----------------------------------------------------------------------------------

    def send_raw(self, raw_tx: bytes) -> tuple[SendOutcome, str]:
        try:
            self._call("eth_sendRawTransaction", ["0x" + raw_tx.hex()])
            return SendOutcome.ACCEPTED, ""
        except (NodeError, NodeUnavailableError) as error:
            message = str(error).lower()
            if "already known" in message or "already imported" in message or "known transaction" in message:
                return SendOutcome.ALREADY_KNOWN, str(error)
            if "nonce too low" in message or "nonce is too low" in message:
                return SendOutcome.NONCE_TOO_LOW, str(error)
            if "underpriced" in message or "fee too low" in message or "replacement" in message:
                return SendOutcome.UNDERPRICED, str(error)
            if "insufficient funds" in message:
                return SendOutcome.INSUFFICIENT_FUNDS, str(error)
            if isinstance(error, NodeUnavailableError) and ("-32000" not in message and "-32003" not in message):
                raise
            return SendOutcome.REJECTED, str(error)
