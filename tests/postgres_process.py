"""A private PostgreSQL (pgserver) that a test may stop and start: never the machine's shared one."""

from __future__ import annotations

import pathlib
import tempfile

from ledger_server.embedded_postgres import EmbeddedPostgres


class PrivatePostgres:
    def __init__(self) -> None:
        self.data_dir = pathlib.Path(tempfile.mkdtemp(prefix="ledger-test-private-pg-"))
        self._server: EmbeddedPostgres | None = EmbeddedPostgres(self.data_dir)
        self.url = self._server.database_url("ledger")

    def restart(self, down_s: float = 1.0) -> None:
        """A fast shutdown (open transactions are rolled back, clients disconnected), then a start."""
        import time

        assert self._server is not None
        self._server.stop()
        time.sleep(down_s)
        self._server = EmbeddedPostgres(self.data_dir)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
