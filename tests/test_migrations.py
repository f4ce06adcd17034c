"""Several replicas starting at once apply each migration exactly once (advisory lock)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg

from ledger_server.migrate import migrate, pending_migrations


def test_concurrent_starts_migrate_once(pg_admin_url: str) -> None:
    name = f"ledger_test_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    try:
        with ThreadPoolExecutor(6) as pool:
            applied = list(pool.map(lambda _: migrate(url), range(6)))
        every = [m for m, _ in pending_migrations(set())]
        assert sorted(m for run in applied for m in run) == every  # each file applied by exactly one starter
        assert migrate(url) == []
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
        assert [r[0] for r in rows] == every
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
