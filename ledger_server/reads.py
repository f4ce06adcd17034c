"""Read RPCs: accounts, balances (now or as of a moment), entries, transfers, assets.

Reads never go through the group committer: they run on a pool of autocommit connections and see
only committed data.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import grpc
from psycopg_pool import ConnectionPool

from ledger.v1 import ledger_pb2
from ledger_server import pagination, queries, wire
from ledger_server.errors import LedgerError
from ledger_server.rows import account_state, transfer_record
from ledger_server.validation import asset_code

Q = queries.load("reads")


def _not_found(reason: str, message: str, **metadata: str) -> LedgerError:
    return LedgerError(grpc.StatusCode.NOT_FOUND, reason, message, metadata)


class Reads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool

    def _one(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._pool.connection() as conn:
            row: tuple[Any, ...] | None = conn.execute(Q[name], params).fetchone()
            return row

    def _all(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            found: list[tuple[Any, ...]] = conn.execute(Q[name], params).fetchall()
            return found

    def get_asset(self, code: str) -> ledger_pb2.Asset:
        row = self._one("get_asset", {"code": code})
        if row is None:
            raise _not_found("ASSET_NOT_FOUND", "no such asset", asset=code)
        return wire.asset(*row)

    def list_assets(self, page_size: int, token: str) -> ledger_pb2.ListAssetsResponse:
        after = pagination.decode(token, "assets", lambda key: asset_code(pagination.text_key(key))) or ""
        rows = self._all("list_assets", {"after": after, "limit": page_size + 1})
        response = ledger_pb2.ListAssetsResponse(assets=[wire.asset(*r) for r in rows[:page_size]])
        if len(rows) > page_size:
            response.next_page_token = pagination.encode(rows[page_size - 1][0], "assets")
        return response

    def get_account(self, account_id: uuid.UUID) -> ledger_pb2.Account:
        row = self._one("get_account", {"id": account_id})
        if row is None:
            raise _not_found("ACCOUNT_NOT_FOUND", "no such account", account_id=str(account_id))
        return wire.account(account_state(row))

    def list_accounts(
        self, page_size: int, token: str, asset: str | None, metadata: dict[str, str]
    ) -> ledger_pb2.ListAccountsResponse:
        query = ["accounts", asset, metadata]
        after = pagination.decode(token, query, pagination.uuid_key)
        params = {
            "after": after or uuid.UUID(int=0), "asset": asset,
            "metadata": json.dumps(metadata), "limit": page_size + 1,
        }
        rows = self._all("list_accounts", params)
        accounts = [wire.account(account_state(r)) for r in rows[:page_size]]
        response = ledger_pb2.ListAccountsResponse(accounts=accounts)
        if len(rows) > page_size:
            response.next_page_token = pagination.encode(str(rows[page_size - 1][0]), query)
        return response

    def get_balance(self, account_id: uuid.UUID, as_of: dt.datetime | None) -> ledger_pb2.AccountBalance:
        account = self.get_account(account_id)
        if as_of is None:
            return ledger_pb2.AccountBalance(
                account_id=account.id, asset=account.asset, debits_pending=account.debits_pending,
                debits_posted=account.debits_posted, credits_pending=account.credits_pending,
                credits_posted=account.credits_posted, version=account.version,
            )
        row = self._one("balance_as_of", {"id": account_id, "as_of": as_of})
        version, dp, dpo, cp, cpo = row if row is not None else (0, "0", "0", "0", "0")
        return ledger_pb2.AccountBalance(
            account_id=account.id, asset=account.asset, debits_pending=dp, debits_posted=dpo,
            credits_pending=cp, credits_posted=cpo, version=version, as_of=wire.timestamp(as_of),
        )

    def list_entries(
        self, account_id: uuid.UUID, page_size: int, token: str, start: dt.datetime | None,
        end: dt.datetime | None,
    ) -> ledger_pb2.ListAccountEntriesResponse:
        self.get_account(account_id)
        query = ["entries", str(account_id), start, end]
        after = pagination.decode(token, query, pagination.int_key) or 0
        params = {"account_id": account_id, "after": after, "start": start, "end": end, "limit": page_size + 1}
        rows = self._all("list_entries", params)
        response = ledger_pb2.ListAccountEntriesResponse(entries=[_entry(r) for r in rows[:page_size]])
        if len(rows) > page_size:
            response.next_page_token = pagination.encode(rows[page_size - 1][7], query)
        return response

    def get_transfer(self, transfer_id: uuid.UUID | None, request_id: str | None) -> ledger_pb2.Transfer:
        if transfer_id is not None:
            row = self._one("get_transfer", {"id": transfer_id})
        else:
            row = self._one("get_transfer_by_request_id", {"request_id": request_id})
        if row is None:
            raise _not_found("TRANSFER_NOT_FOUND", "no such transfer")
        return wire.transfer(transfer_record(row[:-1]), hold_state=row[-1])


def _entry(row: tuple[Any, ...]) -> ledger_pb2.Entry:
    (eid, tid, aid, side, kind, pending_change, posted_change, version, dp, dpo, cp, cpo, created_at) = row
    return ledger_pb2.Entry(
        id=eid, transfer_id=str(tid), account_id=str(aid), side=side, kind=kind, pending_change=pending_change,
        posted_change=posted_change, account_version=version, debits_pending=dp, debits_posted=dpo,
        credits_pending=cp, credits_posted=cpo, created_at=wire.timestamp(created_at),
    )
