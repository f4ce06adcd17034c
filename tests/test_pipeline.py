"""The posting engine's round trips (ledger_server/pipeline.py) on a real database: rows exactly as
psycopg returns them, the first error raised with what followed it skipped, and the connection
usable after any failure."""

from __future__ import annotations

import datetime as dt
import gc
import os
import resource
import uuid
from collections.abc import Callable

import psycopg
import pytest
from psycopg import errors as pg_errors

from ledger_server.pipeline import SYNC, Pipeline, statement

ROW = statement("test_row", "SELECT %(id)s::uuid, %(n)s::bigint, %(flag)s::boolean, %(now)s, %(text)s::text, "
                            "'\\x0a1b'::bytea, %(missing)s::text")
DIVIDE = statement("test_divide", "SELECT 1 / %(d)s::int")
INSERT = statement("test_insert", "INSERT INTO pipeline_probe (v) VALUES (%(v)s::int)")
COUNT = statement("test_count", "SELECT count(*) FROM pipeline_probe")


@pytest.fixture
def conn(new_database: Callable[[], str]) -> psycopg.Connection[tuple[object, ...]]:
    connection = psycopg.connect(new_database(), autocommit=True)
    connection.execute("CREATE TABLE pipeline_probe (v int)")
    return connection


def test_rows_are_what_a_psycopg_cursor_returns(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    pipeline = Pipeline(conn)
    params = {"id": str(uuid.uuid4()), "n": 2**62, "flag": True, "now": dt.datetime.now(dt.UTC),
              "text": 'a "quoted", {braced} é', "missing": None}
    (rows,) = pipeline.run([(ROW, params)])
    (expected,) = conn.execute(
        "SELECT %s::uuid, %s::bigint, %s::boolean, %s::timestamptz, %s::text, '\\x0a1b'::bytea, %s::text",
        [params[name] for name in ("id", "n", "flag", "now", "text", "missing")]).fetchall()
    assert rows == [expected]
    assert pipeline.run([(ROW, params), (ROW, params)]) == [[expected], [expected]]  # one statement twice


def test_the_first_error_is_raised_and_what_follows_it_until_a_sync_is_skipped(
    conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    pipeline = Pipeline(conn)
    with pytest.raises(pg_errors.DivisionByZero):
        pipeline.run([(INSERT, {"v": 1}), (DIVIDE, {"d": 0}), (INSERT, {"v": 2}), SYNC, (INSERT, {"v": 3})])
    # The statements before the sync were one implicit transaction: all of it rolled back; the
    # segment after the sync ran.
    assert pipeline.run([(COUNT, {})]) == [[(1,)]]
    assert conn.execute("SELECT v FROM pipeline_probe").fetchall() == [(3,)]


def test_an_explicit_transaction_spans_round_trips_and_a_failed_one_is_left_to_roll_back(
    conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    pipeline = Pipeline(conn)
    begin, commit = statement("test_begin", "BEGIN ISOLATION LEVEL SERIALIZABLE"), statement("test_commit", "COMMIT")
    pipeline.run([(begin, {}), (INSERT, {"v": 1})])
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    pipeline.run([(INSERT, {"v": 2}), (commit, {})])
    assert conn.execute("SELECT count(*) FROM pipeline_probe").fetchone() == (2,)
    with pytest.raises(pg_errors.DivisionByZero):
        pipeline.run([(begin, {}), (INSERT, {"v": 3}), (DIVIDE, {"d": 0}), (commit, {})])
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.execute("ROLLBACK")
    assert pipeline.run([(COUNT, {})]) == [[(2,)]]


def test_a_statement_whose_prepare_was_skipped_is_prepared_again(
    conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    """A first use behind a failing statement: its PREPARE is skipped with the rest, so the next
    round trip must prepare it again rather than assume it exists."""
    pipeline = Pipeline(conn)
    late = statement("test_late", "SELECT %(x)s::int * 2")
    with pytest.raises(pg_errors.DivisionByZero):
        pipeline.run([(DIVIDE, {"d": 0}), (late, {"x": 4})])
    assert pipeline.run([(late, {"x": 4})]) == [[(8,)]]


def test_a_connection_numbered_past_1024_works(new_database: Callable[[], str]) -> None:
    """A server process with many sockets open: the connection's descriptor may be past select()'s
    limit, so the round trips wait with poll()."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= 2048, f"this test needs 2,048 open files; the hard limit is {hard}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    url = new_database()
    gc.collect()  # connections of earlier tests closed now, not after the numbers below are taken
    fillers = [os.open(os.devnull, os.O_RDONLY)]
    while fillers[-1] <= 1024:  # every free number up to 1024 taken: the connection gets a higher one
        fillers.append(os.open(os.devnull, os.O_RDONLY))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.pgconn.socket > 1024
            assert Pipeline(conn).run([(DIVIDE, {"d": 2}), SYNC, (DIVIDE, {"d": 1})]) == [[(0,)], [], [(1,)]]
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_statements_sent_ahead_are_part_of_the_next_round_trip(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """send() puts statements on the wire at once; run() ends the round trip, returns only its own
    rows and raises the first error of the whole round trip, sent-ahead statements included."""
    pipeline = Pipeline(conn)
    pipeline.send([(INSERT, {"v": 1})])
    pipeline.send([(INSERT, {"v": 2}), (INSERT, {"v": 3})])
    assert pipeline.run([(COUNT, {})]) == [[(3,)]]
    pipeline.send([(INSERT, {"v": 4}), (DIVIDE, {"d": 0})])
    with pytest.raises(pg_errors.DivisionByZero):
        pipeline.run([(INSERT, {"v": 5})])
    assert pipeline.run([(COUNT, {})]) == [[(3,)]]  # that round trip was one implicit transaction


def test_a_round_trip_given_up_half_way_closes_the_connection_and_its_transaction_ends(
    new_database: Callable[[], str]
) -> None:
    url = new_database()
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE pipeline_probe (v int)")
    conn = psycopg.connect(url, autocommit=True)
    pipeline = Pipeline(conn)
    pipeline.send([(statement("test_begin", "BEGIN"), {}), (INSERT, {"v": 1})])
    pipeline.discard()
    assert conn.closed
    with psycopg.connect(url) as other:
        assert other.execute("SELECT count(*) FROM pipeline_probe").fetchone() == (0,)
    fresh = Pipeline(psycopg.connect(url, autocommit=True))
    fresh.discard()  # nothing under way: nothing to do
    assert fresh.run([(COUNT, {})]) == [[(0,)]]
