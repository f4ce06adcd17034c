"""Tenant isolation: a caller limited to a tenant only touches accounts tagged with it.

An account's tenant is its metadata key "tenant", fixed at creation (accounts are never edited),
and a transfer's accounts never change either: both are cached without expiry. Checks run before
anything is queued, so a wrong-tenant call does no work.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

import grpc
from psycopg_pool import ConnectionPool

from ledger_server import queries
from ledger_server.errors import LedgerError

Q = queries.load("access")
TENANT_KEY = "tenant"
CACHE_ENTRIES_MAX = 200_000


def tenant_mismatch() -> LedgerError:
    return LedgerError(grpc.StatusCode.PERMISSION_DENIED, "TENANT_MISMATCH",
                       "the caller may not touch accounts of another tenant")


class TenantGuard:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool
        self._account_tenant: dict[uuid.UUID, str | None] = {}
        self._transfer_accounts: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
        self._lock = threading.Lock()

    def _load(self, query: str, ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(Q[query], {"ids": ids}).fetchall()
            return rows

    def check_accounts(self, tenant: str | None, account_ids: Iterable[uuid.UUID]) -> None:
        """Refuse unless every existing account carries `tenant` (unknown ids are left to the engine)."""
        if tenant is None:
            return
        ids = list(account_ids)
        with self._lock:
            missing = [i for i in ids if i not in self._account_tenant]
        if missing:
            found = {row[0]: row[1] for row in self._load("account_tenants", missing)}
            with self._lock:
                if len(self._account_tenant) > CACHE_ENTRIES_MAX:
                    self._account_tenant.clear()
                self._account_tenant.update(found)
        with self._lock:
            tags = [self._account_tenant.get(i, tenant) for i in ids]
        if any(tag != tenant for tag in tags):
            raise tenant_mismatch()

    def check_transfers(self, tenant: str | None, transfer_ids: Iterable[uuid.UUID]) -> None:
        if tenant is None:
            return
        ids = list(transfer_ids)
        with self._lock:
            missing = [i for i in ids if i not in self._transfer_accounts]
        if missing:
            found = {row[0]: (row[1], row[2]) for row in self._load("transfer_accounts", missing)}
            with self._lock:
                if len(self._transfer_accounts) > CACHE_ENTRIES_MAX:
                    self._transfer_accounts.clear()
                self._transfer_accounts.update(found)
        with self._lock:
            pairs = [self._transfer_accounts[i] for i in ids if i in self._transfer_accounts]
        self.check_accounts(tenant, [a for pair in pairs for a in pair])

    @staticmethod
    def tag_metadata(tenant: str | None, metadata: dict[str, str]) -> dict[str, str]:
        """A new account of a tenant-limited caller always carries the caller's tenant."""
        if tenant is None:
            return metadata
        if metadata.get(TENANT_KEY, tenant) != tenant:
            raise tenant_mismatch()
        return {**metadata, TENANT_KEY: tenant}
