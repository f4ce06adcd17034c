"""The PostgreSQL server a run uses, and the fresh databases it creates on it and drops after.

Given a URL (--database-url), the harness creates its databases on that server. Otherwise it uses
the local server at LOCAL_URL, and when none answers there it starts an embedded one (pgserver).
Every workload and baseline runs on the same server, in its own database.
"""

from __future__ import annotations

import concurrent.futures
import logging
import pathlib
import shutil
import tempfile
import uuid
from typing import Any

import psycopg

log = logging.getLogger(__name__)

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PGBENCH_CANDIDATES = ("/usr/lib/postgresql/16/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench")
SETTINGS = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
            "shared_buffers", "max_connections", "wal_level")


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def with_database(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


class PostgresServer:
    def __init__(self, url: str | None) -> None:
        self._embedded: Any = None
        self.origin: str
        if url:
            if not _reachable(url):
                raise SystemExit(f"--database-url {url} is not reachable")
            self.admin_url, self.origin = url, "given"
        elif _reachable(LOCAL_URL):
            self.admin_url, self.origin = LOCAL_URL, "local"
        else:
            from ledger_server.embedded_postgres import EmbeddedPostgres

            self._tmp = pathlib.Path(tempfile.mkdtemp(prefix="ledger-bench-pg-"))
            self._embedded = EmbeddedPostgres(self._tmp)
            self.admin_url, self.origin = self._embedded.database_url("postgres"), "embedded"
        self._created: list[str] = []

    def settings(self) -> dict[str, str]:
        with psycopg.connect(self.admin_url) as conn:
            return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in SETTINGS}  # type: ignore[index]

    def create_database(self, purpose: str) -> tuple[str, str]:
        """A fresh, empty database: (name, URL)."""
        name = f"bench_{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return name, with_database(self.admin_url, name)

    def drop_databases(self) -> None:
        """Drop every database this run created, in parallel (each drop waits on the server)."""

        def drop(name: str) -> None:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        with concurrent.futures.ThreadPoolExecutor(max(1, len(self._created))) as pool:
            list(pool.map(drop, self._created))
        self._created.clear()

    def pgbench(self) -> str:
        """The pgbench binary: the embedded server's own, PATH, then the Debian locations."""
        candidates: list[str | None] = []
        if self._embedded is not None:
            import pgserver

            candidates.append(str(pathlib.Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"))
        candidates.append(shutil.which("pgbench"))
        candidates.extend(PGBENCH_CANDIDATES)
        for path in candidates:
            if path and pathlib.Path(path).is_file():
                return path
        raise SystemExit("pgbench not found (install postgresql-client or the postgresql package)")

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            shutil.rmtree(self._tmp, ignore_errors=True)
