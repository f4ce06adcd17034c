"""The naive baseline: a ledger written the textbook way, one PostgreSQL transaction per transfer.

`SELECT ... FOR UPDATE` of both accounts (ascending id order), two balance updates, one insert,
COMMIT, over psycopg at READ COMMITTED. It runs inside the load generator's processes (no RPC
layer in front of it), which flatters it: its Python driver time is billed to the load generator.
"""

from __future__ import annotations

import pathlib
import random
import re
from typing import Any

import psycopg

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def _load_queries() -> dict[str, str]:
    text = (pathlib.Path(__file__).parent / "naive_ledger.sql").read_text()
    parts = _NAME.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


Q = _load_queries()


def prepare(database_url: str, accounts: int) -> None:
    """Create the schema and accounts 1..`accounts` (idempotent)."""
    assert accounts >= 2
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(Q["create_schema"])
        conn.execute(Q["seed_accounts"], {"count": accounts})
        conn.execute("ANALYZE naive_accounts")


def total_balance(database_url: str) -> tuple[int, int]:
    """(sum of balances, number of accounts): the sum stays 0 if every transfer was double-entry."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(Q["total_balance"]).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


class NaiveClient:
    """One connection, one transfer per transaction; `hot` > 0 credits only accounts 1..hot."""

    def __init__(self, database_url: str, accounts: int, hot: int, rng: random.Random) -> None:
        assert accounts > hot >= 0
        self._conn: psycopg.Connection[Any] = psycopg.connect(database_url, autocommit=False)
        self._accounts, self._hot, self._rng = accounts, hot, rng

    def next_pair(self) -> tuple[int, int, int]:
        rng = self._rng
        if self._hot:
            debit, credit = rng.randint(self._hot + 1, self._accounts), rng.randint(1, self._hot)
        else:
            debit, credit = rng.sample(range(1, self._accounts + 1), 2)
        return debit, credit, rng.randint(1, 1000)

    def transfer(self, debit: int, credit: int, amount: int) -> None:
        conn = self._conn
        with conn.transaction():
            locked = conn.execute(Q["lock_pair"], {"a": debit, "b": credit}).fetchall()
            if len(locked) != 2:
                raise LookupError(f"account missing among {debit}, {credit}")
            conn.execute(Q["debit"], {"id": debit, "amount": amount})
            conn.execute(Q["credit"], {"id": credit, "amount": amount})
            conn.execute(Q["insert_transfer"], {"debit": debit, "credit": credit, "amount": amount})

    def close(self) -> None:
        self._conn.close()
