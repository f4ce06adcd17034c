"""The chain registry: watched assets, deposit addresses, and the reads of what the watcher saw.

Registrations are idempotent like every mutation of the ledger: the write and its outcome under the
request id commit in one transaction (`commit_once`), a retry replays it, another payload under the
same id is refused. Registering again what is already registered (same parameters, another request
id) answers the existing registration; anything else that collides is a final rejection.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import grpc
import psycopg
from google.protobuf import message as pb_message
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.v1 import chain_pb2, ledger_pb2
from ledger_server import commands as c
from ledger_server import pagination, queries, wire
from ledger_server.chain_validation import RegisterChainAsset, RegisterDepositAddress
from ledger_server.errors import LedgerError, idempotency_key_reused, rejected, transient
from ledger_server.group_commit import Committer
from ledger_server.posting import Outcome

Q = queries.load("chain")
ATTEMPTS_MAX = 8
OMNIBUS_ROLE = "chain_omnibus"



def _key_of(*kinds: str) -> Callable[[Any], list[Any]]:
    """A page-token key parser for a list of (int | text | time) parts: tokens are not secret."""

    def parse(value: Any) -> list[Any]:
        if not isinstance(value, list) or len(value) != len(kinds):
            raise ValueError("not a key")
        parsed: list[Any] = []
        for kind, part in zip(kinds, value, strict=True):
            if kind == "int":
                parsed.append(pagination.int_key(part))
            elif kind == "time":
                parsed.append(dt.datetime.fromisoformat(pagination.text_key(part)))
            else:
                parsed.append(pagination.text_key(part))
        return parsed

    return parse


class IdempotentCommand(Protocol):
    @property
    def request_id(self) -> str: ...
    @property
    def operation(self) -> str: ...
    def request_hash(self) -> bytes: ...


def stored_outcome(conn: psycopg.Connection[Any], command: IdempotentCommand) -> Outcome | None:
    """The replay of a stored outcome, IDEMPOTENCY_KEY_REUSED for another payload, or None."""
    row = conn.execute(Q["load_outcome"], {"request_id": command.request_id}).fetchone()
    if row is None:
        return None
    operation, request_hash, code, payload = row
    if operation != command.operation or bytes(request_hash) != command.request_hash():
        return Outcome.of_error(idempotency_key_reused(command.request_id, operation))
    return Outcome(code, bytes(payload), replayed=True)


def commit_once(
    pool: ConnectionPool[Any], command: IdempotentCommand,
    write: Callable[[psycopg.Connection[Any]], pb_message.Message | LedgerError],
) -> Outcome:
    """Run `write` and remember its outcome (a response or a final rejection) in one transaction.

    A rejection `write` raises undoes its writes; one it returns keeps them (a state change that
    records the refusal). Concurrent duplicates collide on the request id (or on the registry's
    unique keys) and the loser retries, which replays the winner's outcome.
    """
    for attempt in range(ATTEMPTS_MAX):
        not_final: list[LedgerError] = []
        try:
            with pool.connection() as conn, conn.transaction():
                replay = stored_outcome(conn, command)
                if replay is not None:
                    return replay
                result = _in_savepoint(conn, write)
                if isinstance(result, LedgerError):
                    if not result.is_final:  # answered, never remembered: roll everything back
                        not_final.append(result)
                        raise _RollbackError()
                    outcome = Outcome.of_error(result)
                else:
                    outcome = Outcome(0, result.SerializeToString())
                conn.execute(Q["insert_outcome"], {
                    "request_id": command.request_id, "operation": command.operation,
                    "request_hash": command.request_hash(), "grpc_code": outcome.code, "outcome": outcome.payload,
                })
                return outcome
        except _RollbackError:
            return Outcome.of_error(not_final[0])
        except (pg_errors.UniqueViolation, pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
        except psycopg.OperationalError:
            raise transient(
                grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", "database unavailable; retry"
            ) from None
    raise transient(grpc.StatusCode.ABORTED, "SERIALIZATION_RETRIES_EXHAUSTED", "too much contention; retry")


class _RollbackError(Exception):
    """Rolls a savepoint back (LedgerError, a frozen dataclass, cannot pass through a context manager)."""


def _in_savepoint(
    conn: psycopg.Connection[Any], write: Callable[[psycopg.Connection[Any]], pb_message.Message | LedgerError]
) -> pb_message.Message | LedgerError:
    """`write` in a savepoint; a LedgerError it raises comes back as a value, its writes undone."""
    refusal: list[LedgerError] = []
    try:
        with conn.transaction():
            try:
                return write(conn)
            except LedgerError as error:
                refusal.append(error)
                raise _RollbackError() from None
    except _RollbackError:
        return refusal[0]


def chain_asset_message(row: tuple[Any, ...]) -> chain_pb2.ChainAsset:
    chain_id, asset, contract, decimals, confirmations, omnibus, created_at = row
    return chain_pb2.ChainAsset(
        chain_id=chain_id, asset=asset, contract_address=contract, decimals=decimals, confirmations=confirmations,
        omnibus_account_id=str(omnibus), created_at=wire.timestamp(created_at),
    )


def _deposit_address_message(row: tuple[Any, ...]) -> chain_pb2.DepositAddress:
    chain_id, address, account_id, asset, created_at = row
    return chain_pb2.DepositAddress(
        chain_id=chain_id, address=address, account_id=str(account_id), asset=asset,
        created_at=wire.timestamp(created_at),
    )


def omnibus_request_id(chain_id: int, asset: str) -> str:
    """One omnibus account per chain asset, however many times registration is attempted."""
    return f"chain-omnibus:{chain_id}:{asset}"


class ChainRegistry:
    def __init__(self, pool: ConnectionPool[Any], committer: Committer) -> None:
        self._pool = pool
        self._committer = committer

    def _one(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._pool.connection() as conn:
            row: tuple[Any, ...] | None = conn.execute(Q[name], params).fetchone()
            return row

    def _all(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            found: list[tuple[Any, ...]] = conn.execute(Q[name], params).fetchall()
            return found

    # -- registrations ----------------------------------------------------------------------------

    def register_asset(self, cmd: RegisterChainAsset, timeout_s: float) -> Outcome:
        with self._pool.connection() as conn:
            replay = stored_outcome(conn, cmd)
        if replay is not None:
            return replay
        omnibus = cmd.omnibus_account_id
        existing = self._one("chain_asset", {"chain_id": cmd.chain_id, "asset": cmd.asset})
        scale = self._one("asset_scale", {"asset": cmd.asset})
        if omnibus is None and existing is None and scale is not None and scale[0] == cmd.decimals:
            omnibus = self._create_omnibus(cmd.chain_id, cmd.asset, timeout_s)
        return commit_once(self._pool, cmd, lambda conn: self._write_asset(conn, cmd, omnibus))

    def _create_omnibus(self, chain_id: int, asset: str, timeout_s: float) -> uuid.UUID:
        """The ledger account mirroring the hot wallet. Its credits (withdrawals, reversals) may never
        exceed its debits (deposits): the ledger never believes the wallet holds less than nothing."""
        job = c.CreateAccount(
            omnibus_request_id(chain_id, asset), asset, debits_must_not_exceed_credits=False,
            credits_must_not_exceed_debits=True, metadata={"role": OMNIBUS_ROLE, "chain_id": str(chain_id)},
        )
        outcome = self._committer.submit(job, timeout_s)
        if outcome.code != 0:
            raise outcome.error()
        return uuid.UUID(ledger_pb2.Account.FromString(outcome.payload).id)

    def _write_asset(
        self, conn: psycopg.Connection[Any], cmd: RegisterChainAsset, omnibus: uuid.UUID | None
    ) -> chain_pb2.ChainAsset:
        scale = conn.execute(Q["asset_scale"], {"asset": cmd.asset}).fetchone()
        if scale is None:
            raise rejected("ASSET_NOT_FOUND", "no such ledger asset", asset=cmd.asset)
        if scale[0] != cmd.decimals:
            raise rejected(
                "DECIMALS_MISMATCH", "decimals must equal the ledger asset's scale", scale=str(scale[0]),
            )
        existing = conn.execute(Q["chain_asset"], {"chain_id": cmd.chain_id, "asset": cmd.asset}).fetchone()
        if existing is not None:
            same = (existing[2], existing[3], existing[4]) == (cmd.contract_address, cmd.decimals, cmd.confirmations)
            if same and cmd.omnibus_account_id in (None, existing[5]):
                return chain_asset_message(existing)
            raise rejected("CHAIN_ASSET_CONFLICT", "the asset is already registered on this chain otherwise")
        by_contract = conn.execute(
            Q["chain_asset_by_contract"], {"chain_id": cmd.chain_id, "contract_address": cmd.contract_address}
        ).fetchone()
        if by_contract is not None:
            raise rejected(
                "CHAIN_ASSET_CONFLICT", "the contract is already registered for another asset", asset=by_contract[1],
            )
        assert omnibus is not None, "the omnibus account is created before the registration is written"
        account = conn.execute(Q["account_brief"], {"id": omnibus}).fetchone()
        if account is None:
            raise rejected("ACCOUNT_NOT_FOUND", "no such account", account_id=str(omnibus))
        if account[0] != cmd.asset or account[1]:
            raise rejected(
                "INVALID_OMNIBUS_ACCOUNT", "the omnibus account must be of the asset and may not have "
                "debits_must_not_exceed_credits",
            )
        row = conn.execute(Q["insert_chain_asset"], {
            "chain_id": cmd.chain_id, "asset": cmd.asset, "contract_address": cmd.contract_address,
            "decimals": cmd.decimals, "confirmations": cmd.confirmations, "omnibus_account_id": omnibus,
        }).fetchone()
        assert row is not None
        return chain_asset_message(row)

    def register_address(self, cmd: RegisterDepositAddress) -> Outcome:
        return commit_once(self._pool, cmd, lambda conn: self._write_address(conn, cmd))

    def _write_address(self, conn: psycopg.Connection[Any], cmd: RegisterDepositAddress) -> chain_pb2.DepositAddress:
        account = conn.execute(Q["account_brief"], {"id": cmd.account_id}).fetchone()
        if account is None:
            raise rejected("ACCOUNT_NOT_FOUND", "no such account", account_id=str(cmd.account_id))
        asset = account[0]
        chain_asset = conn.execute(Q["chain_asset"], {"chain_id": cmd.chain_id, "asset": asset}).fetchone()
        if chain_asset is None:
            raise rejected("CHAIN_ASSET_NOT_FOUND", "the account's asset is not registered on this chain", asset=asset)
        if chain_asset[5] == cmd.account_id:
            raise rejected("SAME_ACCOUNT", "the omnibus account cannot receive deposits")
        params = {"chain_id": cmd.chain_id, "address": cmd.address, "asset": asset, "account_id": cmd.account_id}
        existing = conn.execute(Q["deposit_address"], params).fetchone()
        if existing is not None:
            if existing[2] == cmd.account_id:
                return _deposit_address_message(existing)
            raise rejected("DEPOSIT_ADDRESS_TAKEN", "the address already pays into another account of the asset")
        row = conn.execute(Q["insert_deposit_address"], params).fetchone()
        assert row is not None
        return _deposit_address_message(row)

    # -- reads ------------------------------------------------------------------------------------

    def list_assets(self, chain_id: int, page_size: int, token: str) -> chain_pb2.ListChainAssetsResponse:
        query = ["chain_assets", chain_id]
        after = pagination.decode(token, query, _key_of("int", "text")) or [0, ""]
        rows = self._all("list_chain_assets", {
            "chain_id": chain_id, "after_chain": after[0], "after_asset": after[1], "limit": page_size + 1,
        })
        response = chain_pb2.ListChainAssetsResponse(assets=[chain_asset_message(r) for r in rows[:page_size]])
        if len(rows) > page_size:
            last = rows[page_size - 1]
            response.next_page_token = pagination.encode([last[0], last[1]], query)
        return response

    def list_addresses(
        self, chain_id: int, account_id: uuid.UUID | None, page_size: int, token: str
    ) -> chain_pb2.ListDepositAddressesResponse:
        query = ["deposit_addresses", chain_id, str(account_id)]
        after = pagination.decode(token, query, _key_of("int", "text", "text")) or [0, "", ""]
        rows = self._all("list_deposit_addresses", {
            "chain_id": chain_id, "account_id": account_id, "after_chain": after[0], "after_address": after[1],
            "after_asset": after[2], "limit": page_size + 1,
        })
        response = chain_pb2.ListDepositAddressesResponse(
            addresses=[_deposit_address_message(r) for r in rows[:page_size]]
        )
        if len(rows) > page_size:
            last = rows[page_size - 1]
            response.next_page_token = pagination.encode([last[0], last[1], last[3]], query)
        return response

    def list_deposits(
        self, account_id: uuid.UUID | None, address: str | None, chain_id: int, page_size: int, token: str
    ) -> chain_pb2.ListChainDepositsResponse:
        query = ["chain_deposits", str(account_id), address, chain_id]
        after = pagination.decode(token, query, _key_of("time", "int", "text", "text"))
        params: dict[str, Any] = {
            "account_id": account_id, "address": address, "chain_id": chain_id, "limit": page_size + 1,
            "after_time": None, "after_chain": 0, "after_tx": "", "after_position": "",
        }
        if after is not None:
            params.update(after_time=after[0], after_chain=after[1], after_tx=after[2], after_position=after[3])
        rows = self._all("list_chain_deposits", params)
        response = chain_pb2.ListChainDepositsResponse(deposits=[_deposit_message(r) for r in rows[:page_size]])
        if len(rows) > page_size:
            last = rows[page_size - 1]
            response.next_page_token = pagination.encode([last[16].isoformat(), last[0], last[1], last[2]], query)
        return response

    def list_alerts(self, chain_id: int, page_size: int, token: str) -> chain_pb2.ListChainAlertsResponse:
        query = ["chain_alerts", chain_id]
        after = pagination.decode(token, query, pagination.int_key) or 0
        rows = self._all("list_chain_alerts", {"chain_id": chain_id, "after_id": int(after), "limit": page_size + 1})
        alerts = [
            chain_pb2.ChainAlert(
                id=r[0], chain_id=r[1], kind=r[2], subject=r[3], message=r[4],
                details={k: str(val) for k, val in json.loads(r[5]).items()}, created_at=wire.timestamp(r[6]),
            )
            for r in rows[:page_size]
        ]
        response = chain_pb2.ListChainAlertsResponse(alerts=alerts)
        if len(rows) > page_size:
            response.next_page_token = pagination.encode(rows[page_size - 1][0], query)
        return response


_SEEN, _CONFIRMED = chain_pb2.SEEN, chain_pb2.CONFIRMED


def _deposit_message(row: tuple[Any, ...]) -> chain_pb2.ChainDeposit:
    (chain_id, tx_hash, position, address, account_id, asset, amount, state, block_number, block_hash,
     confirmations, required, credit_id, reversal_id, from_address, credit_request_id, first_seen, updated) = row
    if state == _SEEN and confirmations >= required:
        state = _CONFIRMED  # confirmed on the watcher's chain; the credit is on its way
    return chain_pb2.ChainDeposit(
        chain_id=chain_id, tx_hash=tx_hash, position=position, address=address, account_id=str(account_id),
        asset=asset, amount=amount, state=state, block_number=block_number, block_hash=block_hash,
        confirmations=confirmations, confirmations_required=required,
        credit_transfer_id=str(credit_id) if credit_id else "",
        reversal_transfer_id=str(reversal_id) if reversal_id else "",
        from_address=from_address, request_id=credit_request_id or "", first_seen_at=wire.timestamp(first_seen),
        updated_at=wire.timestamp(updated),
    )

