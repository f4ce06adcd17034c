"""Exactly one active daemon per chain: a PostgreSQL session advisory lock on the daemon's own
connection.

The connection that holds the lock is the one every write goes through, so the lock is also the
fencing token: a leader whose connection died has lost the lock and cannot commit anything more,
and PostgreSQL releases the lock of a dead process as soon as its connection closes, so a standby
polling every `poll_s` takes over within seconds.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# Two-int advisory keys (a key space apart from the posting engine's one-bigint account keys).
WATCHER_LOCK_CLASS = 0x43484E57  # "CHNW"
SIGNER_LOCK_CLASS = 0x43484E53  # "CHNS"
# A dead peer (host gone, not just the process) is noticed in about 11 s instead of hours.
KEEPALIVE = "keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3"


def lock_key(chain_id: int) -> int:
    """A signed 32-bit key per chain: the id itself when it fits (every public chain), else a hash."""
    if 0 < chain_id < 2**31:
        return chain_id
    return zlib.crc32(str(chain_id).encode()) - 2**31


def connect(database_url: str, application_name: str) -> psycopg.Connection[Any]:
    conninfo = psycopg.conninfo.make_conninfo(database_url, application_name=application_name)
    return psycopg.connect(f"{conninfo} {KEEPALIVE}", autocommit=True, connect_timeout=5)


def try_lead(conn: psycopg.Connection[Any], lock_class: int, chain_id: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (lock_class, lock_key(chain_id))).fetchone()
    return bool(row and row[0])


def still_leading(conn: psycopg.Connection[Any], lock_class: int, chain_id: int) -> bool:
    """Whether this very session holds the lock (a cheap check before each unit of work)."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
        " AND classid = %s::oid AND objid = %s::oid AND objsubid = 2",
        (lock_class, lock_key(chain_id) % 2**32),
    ).fetchone()
    return bool(row and row[0])
