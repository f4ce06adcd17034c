"""The posting engine's warm path, on a real database: accounts from the writer's memory, never trusted.

A batch of plain transfers between accounts the writer committed before skips its read round trip
(ledger_server/account_cache.py). These tests make the remembered rows wrong in every way another
writer (a replica) can, and check that no decision stands on them: the write's guard refuses, the
accounts are forgotten and the batch runs again on the read path, with the answer a fresh read gives.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.v1 import ledger_pb2
from ledger_server import commands as c
from ledger_server import posting
from ledger_server.account_cache import AccountCache
from ledger_server.metrics import Metrics
from ledger_server.pipeline import Pipeline
from ledger_server.state_machine import AccountState
from tests.invariants import assert_ledger_consistent

FAILED_PRECONDITION = 9


def _engine(url: str) -> posting.PostingEngine:
    return posting.PostingEngine(url, Metrics())


def _count(engine: posting.PostingEngine, name: str, labels: dict[str, str] | None = None) -> float:
    return engine._metrics.registry.get_sample_value(name, labels or {}) or 0.0


def _warm(engine: posting.PostingEngine) -> float:
    return _count(engine, "ledger_batch_path_total", {"path": "warm"})


def _fallbacks(engine: posting.PostingEngine) -> float:
    return _count(engine, "ledger_warm_fallbacks_total")


def _accounts(engine: posting.PostingEngine, *limited: bool) -> list[uuid.UUID]:
    """One account per flag: True = its debits may not exceed its credits (no overdraft)."""
    outcomes = engine.execute([c.CreateAccount(f"acct-{uuid.uuid4()}", "USD", flag, False) for flag in limited])
    assert all(o.code == 0 for o in outcomes)
    return [uuid.UUID(ledger_pb2.Account.FromString(o.payload).id) for o in outcomes]


def _transfer(engine: posting.PostingEngine, debit: uuid.UUID, credit: uuid.UUID, amount: int,
              request_id: str | None = None) -> posting.Outcome:
    return engine.execute([c.CreateTransfer(request_id or f"t-{uuid.uuid4()}", debit, credit, amount, "USD",
                                            False, 0)])[0]


def _reason(outcome: posting.Outcome) -> str:
    return str(outcome.error().reason)


@pytest.fixture
def url(new_database: Callable[[], str]) -> str:
    database = new_database()
    assert _engine(database).execute([c.CreateAsset("asset", "USD", 2)])[0].code == 0
    return database


def test_a_transfer_between_remembered_accounts_takes_one_round_trip(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(url)
    source, target = _accounts(engine, False, False)
    trips: list[str] = []
    original = Pipeline.run

    def counted(self: Any, calls: Any) -> Any:
        trips.append("run")
        return original(self, calls)

    monkeypatch.setattr(Pipeline, "run", counted)
    assert _transfer(engine, source, target, 10).code == 0
    assert trips == ["run"] and _warm(engine) == 1
    assert_ledger_consistent(url)


def test_a_credit_made_by_another_writer_is_seen_by_a_rejection(url: str) -> None:
    """The remembered row says 0 on an account that may not go negative; a replica has since
    credited it. The warm attempt would reject the debit: its guard (the account only read, FOR
    SHARE at the remembered version) refuses, and the read path accepts it."""
    here, replica = _engine(url), _engine(url)
    funding, limited, sink = _accounts(here, False, True, False)
    assert _transfer(replica, funding, limited, 100).code == 0
    outcome = _transfer(here, limited, sink, 60)
    assert outcome.code == 0, outcome.error()
    assert _fallbacks(here) == 1
    assert_ledger_consistent(url)


def test_a_debit_made_by_another_writer_is_never_overdrawn(url: str) -> None:
    """The remembered row has 100; a replica has since taken it all. The warm attempt would accept a
    debit of 60: the versioned update finds a newer row, and the read path rejects it."""
    here, replica = _engine(url), _engine(url)
    funding, limited, sink = _accounts(here, False, True, False)
    assert _transfer(here, funding, limited, 100).code == 0
    assert _transfer(replica, limited, sink, 100).code == 0
    outcome = _transfer(here, limited, sink, 60)
    assert outcome.code == FAILED_PRECONDITION and _reason(outcome) == "INSUFFICIENT_FUNDS"
    assert _fallbacks(here) == 1
    assert_ledger_consistent(url)


def test_a_stored_request_id_is_replayed_or_refused_not_written_again(url: str) -> None:
    """The warm path does not look up stored outcomes: the write meets the stored one (a unique
    violation), and the read path replays it, or refuses the same id with another payload."""
    engine = _engine(url)
    source, target = _accounts(engine, False, False)
    first = _transfer(engine, source, target, 10, "same-id")
    again = _transfer(engine, source, target, 10, "same-id")
    assert again.replayed and again.payload == first.payload
    other = _transfer(engine, source, target, 11, "same-id")
    assert _reason(other) == "IDEMPOTENCY_KEY_REUSED"
    assert _fallbacks(engine) == 2
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM transfers WHERE request_id = 'same-id'").fetchone() == (1,)
    assert_ledger_consistent(url)


def test_a_commit_made_while_this_writer_waits_for_its_lock_fails_its_snapshot(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm transaction's snapshot is taken before its locks are granted. A replica holding the
    lock commits a change to the account meanwhile: the warm write must not overwrite it (a
    serialization failure), and the read path applies the transfer on top of it."""
    here, replica = _engine(url), _engine(url)
    source, target = _accounts(here, False, False)
    assert _transfer(here, source, target, 1).code == 0  # both remembered
    paused, resume = threading.Event(), threading.Event()
    original = posting._apply_job

    def pausing(state: Any, job: Any, *args: Any) -> Any:
        if job.request_id == "replica":
            paused.set()
            assert resume.wait(10)
        return original(state, job, *args)

    monkeypatch.setattr(posting, "_apply_job", pausing)
    replica_thread = threading.Thread(target=_transfer, args=(replica, source, target, 5, "replica"))
    replica_thread.start()
    assert paused.wait(10)  # the replica holds both locks, its write not sent
    result: list[posting.Outcome] = []
    here_thread = threading.Thread(target=lambda: result.append(_transfer(here, source, target, 7, "here")))
    here_thread.start()
    _wait_for_lock_waiter(url)
    resume.set()
    replica_thread.join(10)
    here_thread.join(10)
    assert result and result[0].code == 0
    assert _count(here, "ledger_batch_retries_total", {"cause": "serialization"}) == 1 and _fallbacks(here) == 1
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT debits_posted::text, version FROM accounts WHERE id = %s", (source,)).fetchone()
    assert row == ("13", 3)
    assert_ledger_consistent(url)


def _wait_for_lock_waiter(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the warm batch never waited for the lock")


def test_an_atomic_batch_on_a_stale_balance_runs_again_on_the_read_path(url: str) -> None:
    """CreateTransfers (atomic) whose second item needs a credit a replica made since the rows were
    remembered: warm, the batch would fail as a whole; it must commit as a fresh read sees it."""
    here, replica = _engine(url), _engine(url)
    funding, limited, sink = _accounts(here, False, True, False)
    assert _transfer(replica, funding, limited, 50).code == 0
    items = (c.CreateTransfer("item-0", funding, sink, 5, "USD", False, 0),
             c.CreateTransfer("item-1", limited, sink, 40, "USD", False, 0))
    outcome = here.execute([c.TransferBatch("atomic", items, atomic=True)])[0]
    response = ledger_pb2.CreateTransfersResponse.FromString(outcome.payload)
    assert [r.WhichOneof("outcome") for r in response.results] == ["transfer", "transfer"]
    assert _fallbacks(here) == 1
    assert_ledger_consistent(url)


def test_two_writers_racing_on_limited_accounts_never_overdraw(url: str) -> None:
    """Two engines in threads move money at once between three accounts that may not go negative:
    every remembered row is contested. Whatever each answers, the books balance and nothing is
    ever overdrawn."""
    writers = (_engine(url), _engine(url))
    funding, *limited = _accounts(writers[0], False, True, True, True)
    for account in limited:
        assert _transfer(writers[0], funding, account, 100).code == 0
    accepted = [0, 0]

    def hammer(index: int) -> None:
        for i in range(60):
            debit, credit = limited[(i + index) % 3], limited[(i + index + 1) % 3]
            outcome = _transfer(writers[index], debit, credit, 7 + i % 5)
            assert outcome.code == 0 or _reason(outcome) == "INSUFFICIENT_FUNDS", outcome.error()
            accepted[index] += outcome.code == 0

    threads = [threading.Thread(target=hammer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(accepted) > 0
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT sum(credits_posted - debits_posted)::bigint FROM accounts WHERE id = ANY(%s)",
                             (limited,)).fetchone()
    assert total == (300,)
    assert_ledger_consistent(url)  # includes: no limited account was ever past its limit


def test_with_the_warm_path_off_every_batch_reads(url: str) -> None:
    engine = posting.PostingEngine(url, Metrics(), warm_path=False)
    source, target = _accounts(engine, False, False)
    for _ in range(3):
        assert _transfer(engine, source, target, 1).code == 0
    assert _warm(engine) == 0 and _count(engine, "ledger_batch_path_total", {"path": "read"}) == 4


def test_writers_that_keep_moving_each_others_accounts_pause_the_warm_path(url: str) -> None:
    """Two replicas taking turns on the same two accounts: every warm attempt would find its rows
    moved. After a few fallbacks the warm path pauses, and only an occasional probe tries it."""
    writers = (_engine(url), _engine(url))
    source, target = _accounts(writers[0], False, False)
    for i in range(200):
        assert _transfer(writers[i % 2], source, target, 1).code == 0
    fallbacks = [_fallbacks(w) for w in writers]
    # Each writer: about six fallbacks to pass the threshold, then one probe in WARM_PROBE_EVERY.
    assert all(2 <= f <= 8 + 100 // posting.WARM_PROBE_EVERY + 1 for f in fallbacks), fallbacks
    assert_ledger_consistent(url)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 3), st.integers(1, 150)),
                      min_size=1, max_size=25))
def test_two_writers_interleaved_at_random_agree_with_one_serial_ledger(
    url: str, moves: list[tuple[bool, int, int, int]]
) -> None:
    """Two engines (each with its own memory) take turns at random on four accounts that may not go
    negative (one unlimited source). Each answer must be the one a single serial ledger gives."""
    writers = (_engine(url), _engine(url))
    accounts = _accounts(writers[0], False, True, True, True)
    balances = [0, 0, 0, 0]  # credits - debits, the model
    for on_replica, debit, credit, amount in moves:
        outcome = _transfer(writers[on_replica], accounts[debit], accounts[credit], amount)
        if debit == credit:
            assert _reason(outcome) == "SAME_ACCOUNT"
        elif debit != 0 and balances[debit] < amount:
            assert _reason(outcome) == "INSUFFICIENT_FUNDS"
        else:
            assert outcome.code == 0, outcome.error()
            balances[debit] -= amount
            balances[credit] += amount
    with psycopg.connect(url) as conn:
        stored: dict[uuid.UUID, int] = dict(conn.execute(
            "SELECT id, (credits_posted - debits_posted)::bigint FROM accounts WHERE id = ANY(%s)", (accounts,)
        ).fetchall())
    assert [stored[a] for a in accounts] == balances


def test_the_memory_is_bounded_and_forgets_the_least_recently_written_first() -> None:
    def row(n: int, version: int = 0) -> AccountState:
        return AccountState(uuid.UUID(int=n), "USD", 0, 0, 0, 0, False, False, version, {}, dt.datetime.now(dt.UTC))

    memory = AccountCache(max_entries=3)
    memory.remember([row(1), row(2), row(3)])
    memory.remember([row(1, version=1)])  # written again: now the most recent
    memory.remember([row(4)])
    assert len(memory) == 3
    assert memory.lookup([uuid.UUID(int=2)]) is None  # the least recently written went first
    found = memory.lookup([uuid.UUID(int=n) for n in (1, 3, 4)])
    assert found is not None and found[uuid.UUID(int=1)].version == 1
    memory.forget([uuid.UUID(int=3)])
    assert memory.lookup([uuid.UUID(int=1), uuid.UUID(int=3)]) is None
