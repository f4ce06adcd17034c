"""A private PostgreSQL for the no-configuration default (`ledger-server` with no database URL).

Uses the `pgserver` wheel (PostgreSQL binaries shipped on PyPI), with its data directory under the
project's state folder, so the first README command works on a machine with nothing installed.
Durability settings are PostgreSQL's defaults (fsync and synchronous_commit on).
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: pathlib.Path) -> None:
        import pgserver  # imported here: only the embedded default needs it

        data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", data_dir)
        self._server: Any = pgserver.get_server(  # type: ignore[attr-defined]
            str(data_dir), cleanup_mode="stop"
        )
        self.uri: str = self._server.get_uri()
        self._server.psql("SELECT 1;")

    def database_url(self, database: str = "ledger") -> str:
        """The URL of `database`, created on first use."""
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
        if "1 row" not in exists:
            self._server.psql(f'CREATE DATABASE "{database}";')
        base, _, query = self.uri.partition("?")
        return f"{base.rsplit('/', 1)[0]}/{database}" + (f"?{query}" if query else "")

    def stop(self) -> None:
        self._server.cleanup()
