"""The caller directory: API keys and certificate subjects -> principals, with a short cache.

A revocation takes effect at once on the replica that made it and within CACHE_TTL_S elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ledger.v1 import admin_pb2
from ledger_server import commands as c
from ledger_server import queries, wire
from ledger_server.access import keys
from ledger_server.access.scopes import ADMIN
from ledger_server.errors import rejected

Q = queries.load("access")
CACHE_TTL_S = 5.0
CACHE_ENTRIES_MAX = 10_000
API_KEY, CERTIFICATE = 1, 2


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    id: str
    name: str
    scopes: frozenset[str]
    tenant: str | None


SYSTEM = Principal("system", "system", frozenset({ADMIN}), None)


def token_identity(token: str) -> tuple[uuid.UUID, str] | None:
    """The caller id and secret a bearer token claims. Generated keys carry their id; any other
    token of 32..256 characters (a provisioned bootstrap key) gets an id derived from itself."""
    parsed = keys.parse_key(token)
    if parsed is not None:
        return parsed
    if 32 <= len(token) <= 256 and token.isprintable():
        return uuid.UUID(bytes=hashlib.sha256(b"ledger-provisioned-key:" + token.encode()).digest()[:16]), token
    return None


def caller_message(row: tuple[Any, ...]) -> admin_pb2.Caller:
    (cid, kind, name, _, _, subject, scopes, tenant, created_at, created_by, revoked_at) = row
    message = admin_pb2.Caller(
        id=str(cid), kind="api_key" if kind == API_KEY else "certificate", name=name, scopes=scopes,
        tenant=tenant or "", certificate_subject=subject or "", created_at=wire.timestamp(created_at),
        created_by=created_by,
    )
    if revoked_at is not None:
        message.revoked_at.CopyFrom(wire.timestamp(revoked_at))
    return message


class CallerDirectory:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool
        self._cache: dict[object, tuple[float, tuple[Any, ...] | None]] = {}
        self._lock = threading.Lock()

    def _row(self, query: str, key: object, params: dict[str, Any]) -> tuple[Any, ...] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < CACHE_TTL_S:
            return cached[1]
        with self._pool.connection() as conn:
            row: tuple[Any, ...] | None = conn.execute(Q[query], params).fetchone()
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES_MAX:
                self._cache.clear()
            self._cache[key] = (now, row)
        return row

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def by_token(self, token: str) -> Principal | None:
        identity = token_identity(token)
        if identity is None:
            return None
        caller_id, secret = identity
        row = self._row("caller_by_id", caller_id, {"id": caller_id})
        if row is None or row[1] != API_KEY or row[10] is not None:
            return None
        if not keys.key_matches(secret, bytes(row[3]), bytes(row[4])):
            return None
        return Principal(str(row[0]), row[2], frozenset(row[6]), row[7])

    def by_certificate(self, subject: str) -> Principal | None:
        row = self._row("caller_by_subject", ("subject", subject), {"subject": subject})
        if row is None or row[1] != CERTIFICATE or row[10] is not None:
            return None
        return Principal(str(row[0]), row[2], frozenset(row[6]), row[7])


def provision_admin_key(conninfo: str, token: str, name: str = "bootstrap-admin") -> bool:
    """Store a provisioned admin key (hashed), idempotently. True if it was new."""
    identity = token_identity(token)
    if identity is None:
        raise ValueError("a provisioned key must be 32..256 printable characters")
    caller_id, secret = identity
    salt = os.urandom(16)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(Q["insert_caller"], {
            "id": caller_id, "kind": API_KEY, "name": name, "salt": salt, "hash": keys.secret_hash(salt, secret),
            "subject": None, "scopes": [ADMIN], "tenant": None, "now": _utcnow(conn), "created_by": "bootstrap",
        }).fetchone()
    return row is not None


def _utcnow(conn: psycopg.Connection[Any]) -> Any:
    return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


@dataclass(frozen=True)
class CreateApiKey(c.SideEffect):
    request_id: str
    name: str
    scopes: tuple[str, ...]
    tenant: str | None
    new_key: keys.NewKey
    caller: str = "system"
    operation = "CreateApiKey"

    def request_hash(self) -> bytes:
        return c.canonical_hash(self.operation, {"name": self.name, "scopes": sorted(self.scopes),
                                                 "tenant": self.tenant})

    def execute(self, conn: Any, now: Any) -> bytes:
        row = conn.execute(Q["insert_caller"], {
            "id": self.new_key.caller_id, "kind": API_KEY, "name": self.name, "salt": self.new_key.salt,
            "hash": self.new_key.secret_hash, "subject": None, "scopes": list(self.scopes), "tenant": self.tenant,
            "now": now, "created_by": self.caller,
        }).fetchone()
        assert row is not None, "random caller id collided"
        return admin_pb2.CreateApiKeyResponse(caller=caller_message(row)).SerializeToString()


@dataclass(frozen=True)
class CreateCertificateCaller(c.SideEffect):
    request_id: str
    name: str
    subject: str
    scopes: tuple[str, ...]
    tenant: str | None
    caller_id: uuid.UUID
    caller: str = "system"
    operation = "CreateCertificateCaller"

    def request_hash(self) -> bytes:
        return c.canonical_hash(self.operation, {"name": self.name, "subject": self.subject,
                                                 "scopes": sorted(self.scopes), "tenant": self.tenant})

    def execute(self, conn: Any, now: Any) -> bytes:
        row = conn.execute(Q["insert_caller"], {
            "id": self.caller_id, "kind": CERTIFICATE, "name": self.name, "salt": None, "hash": None,
            "subject": self.subject, "scopes": list(self.scopes), "tenant": self.tenant, "now": now,
            "created_by": self.caller,
        }).fetchone()
        if row is None:
            raise rejected("CALLER_ALREADY_EXISTS", "a caller with this certificate subject exists",
                           certificate_subject=self.subject)
        return caller_message(row).SerializeToString()


@dataclass(frozen=True)
class RevokeCaller(c.SideEffect):
    request_id: str
    caller_id: uuid.UUID
    caller: str = "system"
    operation = "RevokeCaller"

    def request_hash(self) -> bytes:
        return c.canonical_hash(self.operation, {"caller_id": str(self.caller_id)})

    def execute(self, conn: Any, now: Any) -> bytes:
        row = conn.execute(Q["revoke_caller"], {"id": self.caller_id, "now": now}).fetchone()
        if row is None:
            exists = conn.execute(Q["caller_by_id"], {"id": self.caller_id}).fetchone()
            reason = "CALLER_ALREADY_REVOKED" if exists else "CALLER_NOT_FOUND"
            raise rejected(reason, "no such active caller", caller_id=str(self.caller_id))
        return caller_message(row).SerializeToString()
