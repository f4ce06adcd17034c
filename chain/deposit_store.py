"""The watcher's state in the ledger database: checkpoint, recent blocks, deposits, alerts.

Every method is one transaction on the leader's connection (leadership.py: the connection that
holds the lock), and each unit of work commits together with the checkpoint it belongs to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger_chain import queries

Q = queries.load("watcher")
SEEN, CREDITED, ORPHANED, REVERSAL_PENDING, REVERSED, HELD, REJECTED = 1, 3, 4, 5, 6, 7, 8


class StaleCheckpointError(Exception):
    """The checkpoint moved under us: another writer, which leadership should make impossible."""


@dataclass(frozen=True)
class Cursor:
    start_block: int
    number: int  # last processed block; start_block - 1 before the first one
    hash: str | None


@dataclass(frozen=True)
class WatchedAsset:
    asset: str
    contract_address: str  # "" for the native coin
    confirmations: int
    omnibus_account_id: uuid.UUID


@dataclass(frozen=True)
class Watchlist:
    assets: tuple[WatchedAsset, ...]
    accounts: dict[tuple[str, str], uuid.UUID]  # (address, asset) -> account

    def asset_of_contract(self, contract: str) -> WatchedAsset | None:
        return next((a for a in self.assets if a.contract_address == contract), None)

    @property
    def native(self) -> WatchedAsset | None:
        return self.asset_of_contract("")

    @property
    def contracts(self) -> list[str]:
        return sorted(a.contract_address for a in self.assets if a.contract_address)


@dataclass(frozen=True)
class BlockRecord:
    number: int
    hash: str
    parent_hash: str


@dataclass(frozen=True)
class DepositSeen:
    tx_hash: str
    position: str  # "native" or "log:<n>": stable across re-inclusion in another block
    address: str
    from_address: str
    asset: str
    account_id: uuid.UUID
    amount: int
    block_number: int
    block_hash: str


@dataclass(frozen=True)
class OpenDeposit:
    """A deposit the watcher must act on: credit it (SEEN, confirmed) or reverse it (REVERSAL_PENDING)."""

    tx_hash: str
    position: str
    account_id: uuid.UUID
    asset: str
    amount: int
    generation: int
    omnibus_account_id: uuid.UUID
    block_number: int
    address: str = ""
    credit_transfer_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Alert:
    kind: str
    subject: str
    message: str
    details: dict[str, str]


class DepositStore:
    def __init__(self, conn: psycopg.Connection[Any], chain_id: int) -> None:
        assert conn.autocommit, "each method opens its own transaction"
        self._conn = conn
        self.chain_id = chain_id

    def _params(self, **values: Any) -> dict[str, Any]:
        return {"chain_id": self.chain_id, **values}

    def cursor(self, start_block: int) -> Cursor:
        with self._conn.transaction():
            self._conn.execute(Q["ensure_cursor"], self._params(start_block=start_block))
            row = self._conn.execute(Q["load_cursor"], self._params()).fetchone()
        assert row is not None
        return Cursor(row[0], row[1], row[2])

    def watchlist(self) -> Watchlist:
        with self._conn.transaction():
            assets = self._conn.execute(Q["watched_assets"], self._params()).fetchall()
            addresses = self._conn.execute(Q["watched_addresses"], self._params()).fetchall()
        return Watchlist(
            tuple(WatchedAsset(a, c, n, o) for a, c, n, o in assets),
            {(address, asset): account for address, asset, account in addresses},
        )

    def block_hash(self, number: int) -> str | None:
        row = self._conn.execute(Q["block_hash"], self._params(number=number)).fetchone()
        return None if row is None else str(row[0])

    def note_head(self, head: int) -> None:
        self._conn.execute(Q["note_head"], self._params(head=head))

    def record_range(
        self, on_top_of: Cursor, blocks: Sequence[BlockRecord], deposits: Sequence[DepositSeen], head: int,
        keep_blocks: int,
    ) -> list[tuple[DepositSeen, int]]:
        """Blocks, the deposits in them and the new checkpoint (the last block), in one transaction.

        Returns each deposit with its state after the write (a re-included deposit may already be
        credited)."""
        assert blocks, "an empty range"
        last = blocks[-1]
        states: list[tuple[DepositSeen, int]] = []
        with self._conn.transaction():
            moved = self._conn.execute(Q["advance_cursor"], self._params(
                number=last.number, hash=last.hash, head=head, expected_number=on_top_of.number,
                expected_hash=on_top_of.hash,
            ))
            if moved.rowcount != 1:
                raise StaleCheckpointError(f"checkpoint of chain {self.chain_id} is no longer {on_top_of}")
            self._conn.execute(Q["insert_blocks"], self._params(
                numbers=[b.number for b in blocks], hashes=[b.hash for b in blocks],
                parent_hashes=[b.parent_hash for b in blocks],
            ))
            for d in deposits:
                row = self._conn.execute(Q["upsert_deposit"], self._params(
                    tx_hash=d.tx_hash, position=d.position, address=d.address, asset=d.asset,
                    account_id=d.account_id, from_address=d.from_address, amount=d.amount,
                    block_number=d.block_number, block_hash=d.block_hash,
                )).fetchone()
                assert row is not None
                states.append((d, int(row[0])))
            self._conn.execute(Q["prune_blocks"], self._params(below=last.number - keep_blocks))
        return states

    def rewind(self, ancestor: int, ancestor_hash: str | None) -> tuple[int, list[tuple[str, str, str, str]]]:
        """Forget the blocks above the common ancestor: unconfirmed deposits there become ORPHANED,
        credited ones REVERSAL_PENDING; the checkpoint goes back to the ancestor. One transaction."""
        with self._conn.transaction():
            self._conn.execute(Q["rewind_blocks"], self._params(ancestor=ancestor))
            orphaned = self._conn.execute(Q["orphan_unconfirmed"], self._params(ancestor=ancestor)).fetchall()
            credited = self._conn.execute(Q["orphan_credited"], self._params(ancestor=ancestor)).fetchall()
            self._conn.execute(Q["rewind_cursor"], self._params(ancestor=ancestor, ancestor_hash=ancestor_hash))
        return len(orphaned), [(str(t), str(p), str(a), str(acc)) for t, p, a, acc in credited]

    def confirmed(self, limit: int) -> list[OpenDeposit]:
        rows = self._conn.execute(Q["confirmed_deposits"], self._params(limit=limit)).fetchall()
        return [
            OpenDeposit(tx, pos, account, asset, int(amount), gen, omnibus, number, address=address)
            for tx, pos, address, asset, account, amount, gen, omnibus, number in rows
        ]

    def mark_credited(self, deposit: OpenDeposit, transfer_id: uuid.UUID, request_id: str) -> bool:
        with self._conn.transaction():
            done = self._conn.execute(Q["mark_credited"], self._params(
                tx_hash=deposit.tx_hash, position=deposit.position, transfer_id=transfer_id,
                request_id=request_id, generation=deposit.generation,
            ))
        return done.rowcount == 1

    def mark_rejected(self, deposit: OpenDeposit, request_id: str, alert: Alert) -> None:
        with self._conn.transaction():
            self._conn.execute(Q["mark_rejected"], self._params(
                tx_hash=deposit.tx_hash, position=deposit.position, request_id=request_id,
            ))
            self._alert(alert)

    def reversals_due(self, limit: int) -> list[OpenDeposit]:
        rows = self._conn.execute(Q["reversals_due"], self._params(limit=limit)).fetchall()
        return [
            OpenDeposit(tx, pos, account, asset, int(amount), gen, omnibus, number, credit_transfer_id=credit)
            for tx, pos, account, asset, amount, gen, credit, omnibus, number in rows
        ]

    def mark_reversed(self, deposit: OpenDeposit, state: int, transfer_id: uuid.UUID | None, alert: Alert) -> None:
        assert state in (REVERSED, HELD)
        with self._conn.transaction():
            self._conn.execute(Q["mark_reversed"], self._params(
                tx_hash=deposit.tx_hash, position=deposit.position, state=state, transfer_id=transfer_id,
            ))
            self._alert(alert)

    def alert(self, alert: Alert) -> None:
        with self._conn.transaction():
            self._alert(alert)

    def _alert(self, alert: Alert) -> None:
        self._conn.execute(Q["insert_alert"], self._params(
            kind=alert.kind, subject=alert.subject, message=alert.message, details=json.dumps(alert.details),
        ))
