"""CreateWithdrawal / GetWithdrawal: record the request, hold the amount, answer; the signer sends it.

1. The request is recorded (REQUESTED) under its request id, so every later step has a stable
   withdrawal id to derive its own ledger request ids from.
2. The hold (a pending transfer from the account to the chain asset's omnibus account) goes through
   the group committer with the request id `withdrawal-hold:<withdrawal id>`: idempotent.
3. The withdrawal becomes HELD (or REJECTED when the ledger refuses the hold) together with the
   outcome under the client's request id, in one transaction.
A crash or a transient error between the steps leaves a REQUESTED row: the client's retry resumes
it, and the signer finishes rows abandoned for long (same hold request id), so a placed hold is
never left behind without its withdrawal.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ledger.v1 import chain_pb2, ledger_pb2
from ledger_server import commands as c
from ledger_server import queries, wire
from ledger_server.chain_registry import commit_once, stored_outcome
from ledger_server.chain_validation import CreateWithdrawal
from ledger_server.errors import LedgerError, idempotency_key_reused, not_found, rejected
from ledger_server.group_commit import Committer
from ledger_server.ids import new_uuid7
from ledger_server.posting import Outcome

Q = queries.load("chain")


def hold_request_id(withdrawal_id: uuid.UUID) -> str:
    return f"withdrawal-hold:{withdrawal_id}"


def hold_metadata(withdrawal_id: uuid.UUID, chain_id: int, to_address: str) -> dict[str, str]:
    """Identical on every attempt (server or signer): the hold's request hash depends on it."""
    return {"withdrawal_id": str(withdrawal_id), "chain_id": str(chain_id), "to_address": to_address}


def withdrawal_message(row: tuple[Any, ...]) -> chain_pb2.Withdrawal:
    (wid, request_id, _hash, account_id, chain_id, asset, to_address, amount, state, hold_id, from_address,
     nonce, tx_hash, confirmations, failure_reason, created_at, updated_at) = row
    return chain_pb2.Withdrawal(
        id=str(wid), request_id=request_id, account_id=str(account_id), chain_id=chain_id, to_address=to_address,
        asset=asset, amount=amount, state=state, hold_id=str(hold_id) if hold_id else "", tx_hash=tx_hash or "",
        nonce=nonce or 0, has_nonce=nonce is not None, from_address=from_address or "",
        confirmations=confirmations, failure_reason=failure_reason, created_at=wire.timestamp(created_at),
        updated_at=wire.timestamp(updated_at),
    )


class WithdrawalRequests:
    def __init__(self, pool: ConnectionPool[Any], committer: Committer) -> None:
        self._pool = pool
        self._committer = committer

    def create(self, cmd: CreateWithdrawal, timeout_s: float) -> Outcome:
        with self._pool.connection() as conn:
            replay = stored_outcome(conn, cmd)
            refusal = _precondition(conn, cmd) if replay is None else None
            row = _record(conn, cmd) if replay is None and refusal is None else None
        if replay is not None:
            return replay
        if refusal is not None:
            return commit_once(self._pool, cmd, lambda _conn: refusal)
        assert row is not None
        if row[2] is not None and bytes(row[2]) != cmd.request_hash():
            return Outcome.of_error(idempotency_key_reused(cmd.request_id, cmd.operation))
        withdrawal_id, omnibus = row[0], row[1]
        hold = self._committer.submit(
            c.CreateTransfer(
                hold_request_id(withdrawal_id), cmd.account_id, omnibus, cmd.amount, cmd.asset, pending=True,
                timeout_seconds=0, metadata=hold_metadata(withdrawal_id, cmd.chain_id, cmd.to_address),
            ),
            timeout_s,
        )
        if hold.code != 0 and not hold.error().is_final:
            raise hold.error()  # transient: the row stays REQUESTED; a retry resumes here
        return commit_once(self._pool, cmd, lambda conn: _settle(conn, withdrawal_id, hold))

    def get(self, withdrawal_id: uuid.UUID | None, request_id: str | None) -> chain_pb2.Withdrawal:
        with self._pool.connection() as conn:
            if withdrawal_id is not None:
                row = conn.execute(Q["withdrawal_by_id"], {"id": withdrawal_id}).fetchone()
            else:
                row = conn.execute(Q["withdrawal_by_request_id"], {"request_id": request_id}).fetchone()
        if row is None:
            raise not_found("no such withdrawal")
        return withdrawal_message(row)


def _precondition(conn: psycopg.Connection[Any], cmd: CreateWithdrawal) -> LedgerError | None:
    """Refusals known before anything is recorded: final, remembered under the request id."""
    account = conn.execute(Q["account_brief"], {"id": cmd.account_id}).fetchone()
    if account is None:
        return rejected("ACCOUNT_NOT_FOUND", "no such account", account_id=str(cmd.account_id))
    if account[0] != cmd.asset:
        return rejected("ASSET_MISMATCH", "the account holds another asset", account_asset=account[0])
    if conn.execute(Q["chain_asset"], {"chain_id": cmd.chain_id, "asset": cmd.asset}).fetchone() is None:
        return rejected("CHAIN_ASSET_NOT_FOUND", "the asset is not registered on this chain", asset=cmd.asset)
    return None


def _record(conn: psycopg.Connection[Any], cmd: CreateWithdrawal) -> tuple[uuid.UUID, uuid.UUID, bytes | None]:
    """Insert the REQUESTED row (or find the one a previous attempt inserted): id, omnibus, its hash."""
    conn.execute(Q["insert_withdrawal"], {
        "id": new_uuid7(), "request_id": cmd.request_id, "request_hash": cmd.request_hash(),
        "account_id": cmd.account_id, "chain_id": cmd.chain_id, "asset": cmd.asset,
        "to_address": cmd.to_address, "amount": cmd.amount,
    })
    row = conn.execute(Q["withdrawal_by_request_id"], {"request_id": cmd.request_id}).fetchone()
    assert row is not None
    chain_asset = conn.execute(Q["chain_asset"], {"chain_id": row[4], "asset": row[5]}).fetchone()
    assert chain_asset is not None
    return row[0], chain_asset[5], row[2]


def _settle(
    conn: psycopg.Connection[Any], withdrawal_id: uuid.UUID, hold: Outcome
) -> chain_pb2.Withdrawal | LedgerError:
    """REQUESTED -> HELD, or REJECTED when the ledger refused the hold (the refusal is the answer)."""
    conn.execute(Q["lock_withdrawal"], {"id": withdrawal_id})
    if hold.code != 0:
        error = hold.error()
        conn.execute(Q["withdrawal_rejected"], {"id": withdrawal_id, "reason": str(error)})
        return error
    hold_id = uuid.UUID(ledger_pb2.Transfer.FromString(hold.payload).id)
    conn.execute(Q["withdrawal_held"], {"id": withdrawal_id, "hold_id": hold_id})
    row = conn.execute(Q["withdrawal_by_id"], {"id": withdrawal_id}).fetchone()
    assert row is not None
    return withdrawal_message(row)
