"""Reads one range of blocks from the node and finds the deposits in it.

A deposit is an ERC-20 `Transfer` log of a watched contract to a watched address, or the value of
a successful transaction to a watched address (native coin). Its key is the transaction and the
position within it ("log:<n>", n counted in the transaction's receipt logs, or "native"), never the
block-level logIndex, which changes when the transaction is re-included in another block.

Every answer is checked against the block hashes read first (logs and receipts carry their block
hash): if the node switched branches mid-read, ChainMovedError makes the caller read the range again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger_chain.deposit_store import BlockRecord, DepositSeen, Watchlist
from ledger_chain.node import EthNode, Header, Log

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


class ChainMovedError(Exception):
    """The node's chain changed while the range was read; nothing of the read may be used."""


@dataclass(frozen=True)
class RangeRead:
    blocks: list[BlockRecord]
    deposits: list[DepositSeen]
    first_parent_hash: str


def _topic_address(topic: str) -> str:
    return "0x" + topic[-40:]


def read_range(node: EthNode, first: int, last: int, watch: Watchlist) -> RangeRead:
    assert 0 <= first <= last
    native = watch.native
    native_addresses = {address for address, asset in watch.accounts if native and asset == native.asset}
    headers = _linked_headers(node, first, last, full=bool(native_addresses))
    hashes = {h.number: h.hash for h in headers}

    token_logs: list[tuple[Log, DepositSeen]] = []
    if watch.contracts:
        for log in node.logs(first, last, watch.contracts, TRANSFER_TOPIC):
            if hashes.get(log.block_number) != log.block_hash:
                raise ChainMovedError(f"log of block {log.block_number} has hash {log.block_hash}")
            found = _token_deposit(log, watch)
            if found is not None:
                token_logs.append((log, found))

    native_found: list[DepositSeen] = []
    if native is not None:
        for header in headers:
            for tx in header.transactions:
                account = watch.accounts.get((tx.to_address, native.asset))
                if account is not None and tx.value > 0:
                    native_found.append(DepositSeen(
                        tx.tx_hash, "native", tx.to_address, tx.from_address, native.asset, account, tx.value,
                        header.number, header.hash,
                    ))

    tx_hashes = sorted({d.tx_hash for _, d in token_logs} | {d.tx_hash for d in native_found})
    receipts = dict(zip(tx_hashes, node.receipts(tx_hashes), strict=True))
    deposits: list[DepositSeen] = []
    for log, found in token_logs:
        receipt = receipts[log.tx_hash]
        if receipt is None or receipt.block_hash != log.block_hash or log.log_index not in receipt.log_indexes:
            raise ChainMovedError(f"receipt of {log.tx_hash} disagrees with its log")
        position = f"log:{receipt.log_indexes.index(log.log_index)}"
        deposits.append(DepositSeen(
            found.tx_hash, position, found.address, found.from_address, found.asset, found.account_id, found.amount,
            found.block_number, found.block_hash,
        ))
    for found in native_found:
        receipt = receipts[found.tx_hash]
        if receipt is None or receipt.block_hash != found.block_hash:
            raise ChainMovedError(f"receipt of {found.tx_hash} disagrees with its block")
        if receipt.status == 1:  # a reverted transaction moved no value
            deposits.append(found)
    blocks = [BlockRecord(h.number, h.hash, h.parent_hash) for h in headers]
    return RangeRead(blocks, deposits, headers[0].parent_hash)


def _linked_headers(node: EthNode, first: int, last: int, full: bool) -> list[Header]:
    headers = node.headers(first, last, full=full)
    found: list[Header] = []
    for number, header in zip(range(first, last + 1), headers, strict=True):
        if header is None or header.number != number:
            raise ChainMovedError(f"block {number} is not there (any more)")
        if found and header.parent_hash != found[-1].hash:
            raise ChainMovedError(f"block {number} does not link to block {number - 1}")
        found.append(header)
    return found


def _token_deposit(log: Log, watch: Watchlist) -> DepositSeen | None:
    """A watched-token Transfer to a watched address with a positive amount (position set later)."""
    if len(log.topics) != 3 or log.topics[0] != TRANSFER_TOPIC:  # ERC-721 Transfer has 4 topics
        return None
    asset = watch.asset_of_contract(log.address)
    if asset is None:
        return None
    to_address = _topic_address(log.topics[2])
    account = watch.accounts.get((to_address, asset.asset))
    data = log.data[2:] if log.data.startswith("0x") else log.data
    if account is None or len(data) != 64:
        return None
    amount = int(data, 16)
    if amount == 0:
        return None
    return DepositSeen(
        log.tx_hash, "", to_address, _topic_address(log.topics[1]), asset.asset, account, amount,
        log.block_number, log.block_hash,
    )
