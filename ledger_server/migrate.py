"""Schema migrations: plain .sql files applied in name order, each once, at server start.

Several replicas may start at once: a session-level advisory lock serializes them, and each file
runs in its own transaction together with its row in schema_migrations.
"""

from __future__ import annotations

import importlib.resources
import logging

import psycopg

log = logging.getLogger(__name__)

# Two-int advisory keys live apart from the one-bigint account keys of the posting engine.
MIGRATION_LOCK = (0x4C454447, 1)  # "LEDG", 1

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS 'Which migration files ran; written with each file.';
"""


def pending_migrations(applied: set[str]) -> list[tuple[str, str]]:
    folder = importlib.resources.files("ledger_server.migrations")
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, folder.joinpath(name).read_text()) for name in files if name not in applied]


def migrate(conninfo: str) -> list[str]:
    """Apply every pending migration; returns the names applied by this call."""
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
        try:
            conn.execute(CREATE_TABLE)
            applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations").fetchall()}
            for name, sql in pending_migrations(applied):
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                log.info("applied migration %s", name)
                applied_now.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATION_LOCK)
    return applied_now
