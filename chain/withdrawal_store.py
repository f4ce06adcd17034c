"""The signer's state in the ledger database: withdrawals, their signed transactions, the nonce
manager. Every method is one transaction on the leader's connection (leadership.py).

The nonce manager: `sign_first_attempt` takes the wallet's next nonce, binds it to the withdrawal
and stores the signed transaction, all in one transaction, before anything is broadcast. So a nonce
is never given twice (also a unique index), never skipped (it advances only with a withdrawal that
uses it), and a restart re-sends exactly the stored bytes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger_chain import queries

Q = queries.load("signer")
REQUESTED, HELD, SIGNED, SENT, MINED, POSTED, FAILED, REJECTED = range(1, 9)
STATE_NAMES = {1: "requested", 2: "held", 3: "signed", 4: "sent", 5: "mined", 6: "posted", 7: "failed",
               8: "rejected"}


@dataclass(frozen=True)
class OpenWithdrawal:
    id: uuid.UUID
    request_id: str
    account_id: uuid.UUID
    asset: str
    to_address: str
    amount: int
    state: int
    hold_id: uuid.UUID | None
    nonce: int | None
    tx_hash: str | None
    mined_block_number: int | None
    contract_address: str  # "" for the native coin
    confirmations_required: int
    omnibus_account_id: uuid.UUID
    idle_s: float


@dataclass(frozen=True)
class SignedTx:
    tx_hash: str
    raw_tx: bytes
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class Attempt:
    attempt: int
    kind: str  # "transfer", or "cancel": a zero-value transaction to self that fills a dropped nonce
    nonce: int
    tx_hash: str
    raw_tx: bytes
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    age_s: float
    broadcast: bool


class WithdrawalStore:
    def __init__(self, conn: psycopg.Connection[Any], chain_id: int) -> None:
        assert conn.autocommit, "each method opens its own transaction"
        self._conn = conn
        self.chain_id = chain_id

    def _params(self, **values: Any) -> dict[str, Any]:
        return {"chain_id": self.chain_id, **values}

    # -- the nonce manager ------------------------------------------------------------------------

    def ensure_nonce(self, address: str, node_pending: int, node_latest: int) -> tuple[int, int]:
        """(next nonce, the stored value before) for the wallet; created from the node's pending count
        the first time; raised to the node's mined count if the key was used elsewhere."""
        with self._conn.transaction():
            self._conn.execute(Q["ensure_nonce"], self._params(address=address, nonce=node_pending))
            row = self._conn.execute(Q["lock_nonce"], self._params(address=address)).fetchone()
            assert row is not None
            before = int(row[0])
            self._conn.execute(Q["raise_nonce"], self._params(address=address, nonce=node_latest))
        return max(before, node_latest), before

    def next_nonce(self, address: str) -> int:
        row = self._conn.execute(Q["load_nonce"], self._params(address=address)).fetchone()
        assert row is not None
        return int(row[0])

    def sign_first_attempt(
        self, withdrawal: OpenWithdrawal, address: str, sign: Callable[[int], SignedTx]
    ) -> tuple[int, SignedTx] | None:
        """HELD -> SIGNED with the next nonce and the signed transaction; None if no longer HELD."""
        with self._conn.transaction():
            row = self._conn.execute(Q["lock_nonce"], self._params(address=address)).fetchone()
            assert row is not None, "ensure_nonce runs first"
            nonce = int(row[0])
            signed = sign(nonce)
            bound = self._conn.execute(Q["bind_nonce"], self._params(
                id=withdrawal.id, nonce=nonce, from_address=address, tx_hash=signed.tx_hash,
            ))
            if bound.rowcount != 1:
                return None
            self._insert_attempt(withdrawal.id, 0, "transfer", nonce, signed)
            advanced = self._conn.execute(Q["advance_nonce"], self._params(address=address, nonce=nonce))
            assert advanced.rowcount == 1
        return nonce, signed

    def add_attempt(self, withdrawal_id: uuid.UUID, attempt: int, kind: str, nonce: int, signed: SignedTx) -> None:
        with self._conn.transaction():
            self._insert_attempt(withdrawal_id, attempt, kind, nonce, signed)
            self._conn.execute(Q["latest_tx"], {"id": withdrawal_id, "tx_hash": signed.tx_hash})

    def _insert_attempt(self, withdrawal_id: uuid.UUID, attempt: int, kind: str, nonce: int, signed: SignedTx) -> None:
        self._conn.execute(Q["insert_attempt"], {
            "id": withdrawal_id, "attempt": attempt, "kind": kind, "nonce": nonce, "tx_hash": signed.tx_hash,
            "raw_tx": signed.raw_tx, "max_fee": signed.max_fee_per_gas, "priority_fee": signed.max_priority_fee_per_gas,
        })

    # -- withdrawals ------------------------------------------------------------------------------

    def withdrawals(self, states: Sequence[int], limit: int, idle_s: float = 0.0) -> list[OpenWithdrawal]:
        rows = self._conn.execute(Q["withdrawals_in"], self._params(
            states=list(states), limit=limit, idle_s=idle_s,
        )).fetchall()
        return [
            OpenWithdrawal(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], r[8], r[9], r[10], r[12], r[13],
                           r[14], float(r[15]))
            for r in rows
        ]

    def attempts(self, withdrawal_id: uuid.UUID) -> list[Attempt]:
        rows = self._conn.execute(Q["attempts_of"], {"id": withdrawal_id}).fetchall()
        return [Attempt(r[0], r[1], r[2], r[3], bytes(r[4]), int(r[5]), int(r[6]), float(r[7]), bool(r[8]))
                for r in rows]

    def broadcast_done(self, withdrawal_id: uuid.UUID, attempt: int) -> None:
        self._conn.execute(Q["broadcast_done"], {"id": withdrawal_id, "attempt": attempt})

    def move(
        self, withdrawal_id: uuid.UUID, from_state: int, state: int, *, tx_hash: str | None = None,
        block_number: int | None = None, block_hash: str | None = None, confirmations: int = 0,
    ) -> bool:
        done = self._conn.execute(Q["set_state"], {
            "id": withdrawal_id, "from_state": from_state, "state": state, "tx_hash": tx_hash,
            "block_number": block_number, "block_hash": block_hash, "confirmations": confirmations,
        })
        return done.rowcount == 1

    def touch(self, withdrawal_id: uuid.UUID, confirmations: int) -> None:
        self._conn.execute(Q["touch"], {"id": withdrawal_id, "confirmations": confirmations})

    def settle(
        self, withdrawal_id: uuid.UUID, state: int, transfer_id: uuid.UUID, reason: str = "",
        alert: tuple[str, str, str, dict[str, str]] | None = None,
    ) -> None:
        assert state in (POSTED, FAILED)
        with self._conn.transaction():
            self._conn.execute(Q["settle"], {
                "id": withdrawal_id, "state": state, "transfer_id": transfer_id, "reason": reason,
                "from_states": [HELD, SIGNED, SENT, MINED],
            })
            if alert is not None:
                self._alert(*alert)

    def requested_settled(self, withdrawal_id: uuid.UUID, state: int, hold_id: uuid.UUID | None, reason: str) -> None:
        assert state in (HELD, REJECTED)
        self._conn.execute(Q["requested_settled"], {
            "id": withdrawal_id, "state": state, "hold_id": hold_id, "reason": reason,
        })

    def alert(self, kind: str, subject: str, message: str, details: dict[str, str]) -> None:
        with self._conn.transaction():
            self._alert(kind, subject, message, details)

    def _alert(self, kind: str, subject: str, message: str, details: dict[str, str]) -> None:
        self._conn.execute(Q["insert_alert"], self._params(
            kind=kind, subject=subject, message=message, details=json.dumps(details),
        ))
