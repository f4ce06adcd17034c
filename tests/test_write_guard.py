"""The posting engine's one-statement write and its lost-update guard, on a real database.

A batch whose accounts (or holds) changed after it read them must write nothing: the guard inside
`write_effects` raises a serialization failure, the transaction (and the COMMIT behind it) rolls
back, and the engine retries with fresh rows. Here the staleness is injected into the first
attempt's parameters; the retry must then commit exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
import pytest

from ledger.v1 import events_pb2, ledger_pb2
from ledger_server import commands as c
from ledger_server import posting
from ledger_server.metrics import Metrics
from tests.invariants import assert_ledger_consistent
from tests.stale_write import stale_first_write


def _engine(url: str) -> tuple[posting.PostingEngine, Metrics]:
    metrics = Metrics()
    return posting.PostingEngine(url, metrics), metrics


def _retries(metrics: Metrics, cause: str) -> float:
    value = metrics.registry.get_sample_value("ledger_batch_retries_total", {"cause": cause})
    return value or 0.0


@pytest.fixture
def books(new_database: Callable[[], str]) -> tuple[str, posting.PostingEngine, Metrics, list[uuid.UUID]]:
    url = new_database()
    engine, metrics = _engine(url)
    assert engine.execute([c.CreateAsset("asset", "USD", 2)])[0].code == 0
    outcomes = engine.execute([c.CreateAccount(f"acct-{i}", "USD", False, False) for i in range(3)])
    ids = [uuid.UUID(ledger_pb2.Account.FromString(o.payload).id) for o in outcomes]
    return url, engine, metrics, ids


def test_a_stale_account_version_writes_nothing_and_the_retry_commits_once(
    books: tuple[str, posting.PostingEngine, Metrics, list[uuid.UUID]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, engine, metrics, (a, b, _) = books
    attempts = stale_first_write(monkeypatch)
    jobs = [c.CreateTransfer(f"t-{i}", a, b, 10, "USD", False, 0) for i in range(5)]
    outcomes = engine.execute(jobs)
    assert [o.code for o in outcomes] == [0] * 5
    assert len(attempts) == 2 and _retries(metrics, "stale_read") == 1
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM transfers").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM request_outcomes WHERE request_id LIKE 't-%'").fetchone() == (5,)
        version, posted = conn.execute(
            "SELECT version, debits_posted::text FROM accounts WHERE id = %s", (a,)).fetchone()  # type: ignore[misc]
    assert (version, posted) == (5, "50")
    replay = engine.execute(jobs[:1])[0]
    assert replay.replayed and replay.payload == outcomes[0].payload
    assert_ledger_consistent(url)


def test_the_guard_refuses_any_difference_and_passes_an_exact_match(new_database: Callable[[], str]) -> None:
    with psycopg.connect(new_database(), autocommit=True) as conn:
        assert conn.execute("SELECT ledger_write_guard(2, 2, 0, 0)").fetchone() == (True,)
        for args in ("1, 2, 0, 0", "2, 2, 0, 1"):
            with pytest.raises(psycopg.errors.SerializationFailure, match="stale write"):
                conn.execute(f"SELECT ledger_write_guard({args})")


def test_text_and_bytea_array_literals_survive_any_content(new_database: Callable[[], str]) -> None:
    """Request ids, metadata JSON and payloads travel as array literals built by hand: quotes,
    backslashes, braces, commas, spaces, unicode, NULL-looking text and empty strings come back as sent."""
    texts: list[str | None] = ['a"b', "back\\slash", "{braces}", "comma,inside", " spaced ", "ünï ✓", "NULL", "",
                               None, '{"k": "v\\"q"}']
    blobs = [b"", b"\x00\x01\xff", bytes(range(256)), b'"\\{},']
    with psycopg.connect(new_database(), autocommit=True) as conn:
        got_texts = conn.execute("SELECT %s::text[]", (posting._text_array(texts),)).fetchone()[0]  # type: ignore[index]
        got_blobs = conn.execute("SELECT %s::bytea[]", (posting._bytea_array(blobs),)).fetchone()[0]  # type: ignore[index]
    assert got_texts == texts
    assert [bytes(b) for b in got_blobs] == blobs


def test_a_hold_created_and_settled_in_one_batch_is_stored_in_its_final_state(
    new_database: Callable[[], str]
) -> None:
    """Sibling sub-statements of write_effects cannot see each other's rows, so a hold posted in the
    batch that created it is inserted already POSTED (ids are made predictable here, which clients
    cannot do: the server assigns them)."""
    url = new_database()
    hold_id = uuid.uuid4()
    next_ids: list[uuid.UUID] = []

    def new_id() -> uuid.UUID:
        return next_ids.pop(0) if next_ids else uuid.uuid4()

    engine = posting.PostingEngine(url, Metrics(), new_id=new_id)
    assert engine.execute([c.CreateAsset("asset", "USD", 2)])[0].code == 0
    outcomes = engine.execute([c.CreateAccount(f"acct-{i}", "USD", False, False) for i in range(2)])
    a, b = (uuid.UUID(ledger_pb2.Account.FromString(o.payload).id) for o in outcomes)
    next_ids.append(hold_id)  # the next id the engine makes: the hold's
    results = engine.execute([c.CreateTransfer("hold", a, b, 100, "USD", True, 3600),
                              c.PostPending("post", hold_id, 60, {})])
    assert [r.code for r in results] == [0, 0], [posting.Outcome.error(r) for r in results if r.code]
    assert ledger_pb2.Transfer.FromString(results[0].payload).id == str(hold_id)
    with psycopg.connect(url) as conn:
        hold = conn.execute("SELECT state, posted_amount::text, amount::text, settled_by IS NOT NULL FROM holds "
                            "WHERE transfer_id = %s", (hold_id,)).fetchone()
        counters = conn.execute("SELECT debits_pending::text, debits_posted::text FROM accounts WHERE id = %s",
                                (a,)).fetchone()
    assert hold == (2, "60", "100", True)
    assert counters == ("0", "60")
    with psycopg.connect(url) as conn:
        payloads = [bytes(r[0]) for r in conn.execute(
            "SELECT payload FROM outbox WHERE event_type IN (4, 5) ORDER BY sequence").fetchall()]
    events = [events_pb2.LedgerEvent.FromString(p) for p in payloads]
    # each event carries its transfer exactly as the request's response did (the bytes are reused)
    assert [e.transfer for e in events] == [ledger_pb2.Transfer.FromString(r.payload) for r in results]
    assert_ledger_consistent(url)
