"""Prepared statements sent in one round trip on a psycopg connection's libpq handle.

psycopg's pipeline mode waits on the socket before it sends each queued statement, and builds a
cursor, an adapters map and a result-queue entry per statement: measured alone, 190-210 µs of
Python for a pipeline of four small statements where sending them straight through libpq takes
52-55 µs, and every wait releases the interpreter lock, a chance for another thread to take the
writer's turn (benchmarks/README.md, "Fixes made"). The posting engine's batch is a handful of
statements in two round trips, so this was a third of a small batch's Python time.

Here a round trip sends every statement of the list (each prepared on first use in the same round
trip), a sync where asked, then reads every result, waiting on the socket only when libpq must.
Parameters travel as text; a parameter named `now` is a timestamptz, every other one has the type
its statement casts it to. Rows are loaded by psycopg's own loaders, so they are exactly what a
psycopg cursor would return. A round trip may be begun with send() and ended by run(): a large
batch's rows are written by the server while the engine is still applying the rest of it.
"""

from __future__ import annotations

import datetime as dt
import select
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import adapt, pq
from psycopg import errors as pg_errors

from ledger_server.queries import positional

TIMESTAMPTZ_OID = 1184
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


@dataclass(frozen=True)
class Statement:
    """A named query with `%(name)s` placeholders, as it is prepared on each connection."""

    name: bytes
    sql: bytes
    params: tuple[str, ...]
    types: tuple[int, ...]


def statement(name: str, query: str) -> Statement:
    sql, params = positional(query)
    types = tuple(TIMESTAMPTZ_OID if param == "now" else 0 for param in params)
    return Statement(f"ledger_{name}".encode(), sql.encode(), params, types)


SYNC = None  # in a round trip's list: end the implicit transaction of the statements before it


def _text(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, dt.datetime):
        assert value.tzinfo is not None, "timestamps are always zoned"
        return value.isoformat().encode()
    raise TypeError(f"no text form for {type(value).__name__} parameters")


class Pipeline:
    """Round trips of prepared statements on one connection (used by one thread at a time)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        assert conn.autocommit, "transactions are opened and closed by the statements themselves"
        self._conn = conn
        self._pg = conn.pgconn
        self._prepared: set[bytes] = set()
        self._loader = adapt.Transformer(conn)
        # The round trip under way: per result owed, the statement it prepares, b"" for a call,
        # None for a sync; statements being prepared; how many calls send() queued before run().
        self._owed: list[bytes | None] = []
        self._preparing: set[bytes] = set()
        self._sent_before = 0
        # poll, not select: a server with many open sockets may give this one a number past 1024.
        self._readable = select.poll()
        self._readable.register(self._pg.socket, select.POLLIN)
        self._readable_or_writable = select.poll()
        self._readable_or_writable.register(self._pg.socket, select.POLLIN | select.POLLOUT)

    def send(self, calls: Sequence[tuple[Statement, Mapping[str, object]]]) -> None:
        """Send statements now, part of the round trip the next run() ends (their results are read,
        and their first error raised, there): the server works on them while the caller prepares
        the rest. If the caller gives up before that run(), it must call discard()."""
        assert SYNC not in calls, "a sync ends the round trip: leave it to run()"
        self._queue(calls)
        self._sent_before += len(calls)
        self._pg.flush()  # without waiting: what the socket does not take now goes with run()

    def run(self, calls: Sequence[tuple[Statement, Mapping[str, object]] | None]) -> list[list[tuple[Any, ...]]]:
        """Each statement's rows, in order (a SYNC's entry is empty). If a statement fails, the ones
        after it up to the next SYNC are skipped by the server, every result is still read, and the
        first error is raised (psycopg's exception for its SQLSTATE). Statements sent before with
        send() are part of this round trip: only their errors are reported, not their rows."""
        pg = self._pg
        try:
            self._queue(calls)
            if self._owed and self._owed[-1] is not None:
                pg.pipeline_sync()
                self._owed.append(None)
            self._flush()
            results, error = self._read(self._owed)
        finally:
            sent_before, self._sent_before = self._sent_before, 0
            self._owed, self._preparing = [], set()
            self._leave_pipeline_mode()
        if error is not None:
            raise error
        return results[sent_before: sent_before + len(calls)]

    def discard(self) -> None:
        """The caller gave up on a round trip begun with send(): its results cannot be skipped, so
        the connection is closed (the server ends its transaction; the engine reconnects)."""
        if not self._owed and self._pg.pipeline_status == pq.PipelineStatus.OFF:
            return
        self._owed, self._preparing, self._sent_before = [], set(), 0
        self._conn.close()

    def _queue(self, calls: Sequence[tuple[Statement, Mapping[str, object]] | None]) -> None:
        """Hand the statements to libpq (sent when it flushes), noting which results they owe."""
        pg = self._pg
        if pg.pipeline_status == pq.PipelineStatus.OFF:
            pg.enter_pipeline_mode()
        for call in calls:
            if call is SYNC:
                pg.pipeline_sync()
                self._owed.append(None)
                continue
            query, params = call
            if query.name not in self._prepared and query.name not in self._preparing:
                pg.send_prepare(query.name, query.sql, param_types=query.types)
                self._preparing.add(query.name)
                self._owed.append(query.name)
            pg.send_query_prepared(query.name, [_text(params[name]) for name in query.params])
            self._owed.append(b"")

    def _leave_pipeline_mode(self) -> None:
        """After every result was read; if the connection broke half way, it is closed instead (the
        engine reconnects, and the server ends whatever transaction it had)."""
        if self._pg.pipeline_status == pq.PipelineStatus.OFF:
            return
        try:
            self._pg.exit_pipeline_mode()
        except psycopg.Error:
            self._conn.close()

    def _flush(self) -> None:
        """Send everything; while the socket is full, read what the server sends back meanwhile."""
        pg = self._pg
        while pg.flush() == 1:
            if any(events & ~select.POLLOUT for _, events in self._readable_or_writable.poll()):
                pg.consume_input()  # also raises if the connection broke

    def _read(self, expected: list[bytes | None]) -> tuple[list[list[tuple[Any, ...]]], Exception | None]:
        results: list[list[tuple[Any, ...]]] = []
        error: Exception | None = None
        for prepares in expected:
            result = self._next_result()
            if prepares is None:
                assert result is not None and result.status == pq.ExecStatus.PIPELINE_SYNC, result
                results.append([])
                continue
            rows: list[tuple[Any, ...]] = []
            while result is not None:
                if result.status == pq.ExecStatus.TUPLES_OK:
                    self._loader.set_pgresult(result)
                    rows = self._loader.load_rows(0, result.ntuples, tuple)
                elif result.status not in _OK and result.status != pq.ExecStatus.PIPELINE_ABORTED and error is None:
                    error = pg_errors.error_from_result(result, encoding=self._conn.info.encoding)
                elif prepares and result.status == pq.ExecStatus.COMMAND_OK:
                    self._prepared.add(prepares)
                result = self._next_result()
            if not prepares:
                results.append(rows)
        return results, error

    def _next_result(self) -> pq.abc.PGresult | None:
        pg = self._pg
        while pg.is_busy():
            self._readable.poll()
            pg.consume_input()
        return pg.get_result()
