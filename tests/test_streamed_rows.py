"""A large batch's rows go to PostgreSQL in parts while the rest is applied (posting._RowStream).

Sending early must change nothing a client can see: the same rows, balances, events and replays as
one statement would write, nothing of a batch that fails after some parts were sent, and no part
that a savepoint could still take back (an item rejected or an atomic batch failing). The part size
is made tiny here so a handful of transfers crosses several parts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from ledger.v1 import events_pb2, ledger_pb2
from ledger_server import commands as c
from ledger_server import posting
from ledger_server.metrics import Metrics
from ledger_server.pipeline import Pipeline
from tests.invariants import assert_ledger_consistent
from tests.stale_write import stale_first_write

Books = tuple[str, posting.PostingEngine, Metrics, list[uuid.UUID]]


@pytest.fixture
def books(new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> Books:
    monkeypatch.setattr(posting, "STREAM_PART_TRANSFERS", 3)
    url = new_database()
    metrics = Metrics()
    engine = posting.PostingEngine(url, metrics)
    assert engine.execute([c.CreateAsset("asset", "USD", 2)])[0].code == 0
    # acct-0 may not go below zero: it rejects what it cannot pay
    outcomes = engine.execute([c.CreateAccount("acct-0", "USD", True, False)]
                              + [c.CreateAccount(f"acct-{i}", "USD", False, False) for i in range(1, 4)])
    return url, engine, metrics, [uuid.UUID(ledger_pb2.Account.FromString(o.payload).id) for o in outcomes]


def _count_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sends: list[int] = []
    original = Pipeline.send

    def counted(self: Any, calls: Any) -> None:
        sends.append(len(calls))
        original(self, calls)

    monkeypatch.setattr(Pipeline, "send", counted)
    return sends


def _rows(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        return {
            "transfers": conn.execute("SELECT count(*) FROM transfers").fetchone(),
            "entries": conn.execute("SELECT count(*) FROM entries").fetchone(),
            "outcomes": conn.execute("SELECT count(*) FROM request_outcomes").fetchone(),
            "events": conn.execute("SELECT count(*) FROM outbox").fetchone(),
            "balances": conn.execute(
                "SELECT debits_pending::text, debits_posted::text, credits_pending::text, credits_posted::text, "
                "version FROM accounts ORDER BY id").fetchall(),
        }


def test_a_batch_sent_in_parts_writes_what_one_statement_writes(
    books: Books, new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs and CreateTransfers items of every kind across several parts, with rejected items among
    them and a hold created in one part and posted in a later one; the same batch through one
    statement (parts too large to send) on another database gives the same rows and balances."""
    url, engine, _, (a, b, d, e) = books
    hold_id = uuid.uuid4()

    def jobs(accounts: list[uuid.UUID], hold: uuid.UUID) -> list[c.Job]:
        a, b, d, e = accounts
        items = [c.CreateTransfer(f"item-{i}", b, d, 5 + i, "USD", False, 0) for i in range(7)]
        items.insert(3, c.CreateTransfer("item-broke", a, d, 10**6, "USD", False, 0))  # rejected
        return [
            c.CreateTransfer("hold", b, e, 100, "USD", True, 3600),  # first: it gets the id made first
            c.CreateTransfer("fund", e, a, 1_000, "USD", False, 0),
            *[c.CreateTransfer(f"single-{i}", a, b, 10, "USD", False, 0) for i in range(4)],
            c.CreateTransfer("too-much", a, b, 10**6, "USD", False, 0),  # rejected
            c.TransferBatch("batch", tuple(items), atomic=False),
            *[c.CreateTransfer(f"later-{i}", d, e, 1, "USD", False, 0) for i in range(5)],
            c.PostPending("post", hold, 60, {}),
            c.TransferBatch("atomic-fails", (c.CreateTransfer("x-1", b, e, 1, "USD", False, 0),
                                             c.CreateTransfer("x-2", a, e, 10**6, "USD", False, 0)), atomic=True),
        ]

    ids = iter([hold_id])
    monkeypatch.setattr(engine, "_new_id", lambda: next(ids, None) or uuid.uuid4())
    sends = _count_sends(monkeypatch)
    results = engine.execute(jobs([a, b, d, e], hold_id))
    assert len(sends) >= 4  # several parts went ahead of the last one
    codes = [r.code for r in results]
    assert codes[:6] == [0] * 6 and codes[6] != 0 and codes[7:-1] == [0] * 7, codes
    batch = ledger_pb2.CreateTransfersResponse.FromString(results[7].payload)
    assert [r.WhichOneof("outcome") for r in batch.results] == ["transfer"] * 3 + ["error"] + ["transfer"] * 4
    assert ledger_pb2.Transfer.FromString(results[0].payload).id == str(hold_id)
    atomic = ledger_pb2.CreateTransfersResponse.FromString(results[-1].payload)
    assert [r.WhichOneof("outcome") for r in atomic.results] == ["error", "error"]
    streamed = _rows(url)

    # the same jobs, written by one statement
    monkeypatch.setattr(posting, "STREAM_PART_TRANSFERS", 10**6)
    url2 = new_database()
    engine2 = posting.PostingEngine(url2, Metrics())
    assert engine2.execute([c.CreateAsset("asset", "USD", 2)])[0].code == 0
    accounts2 = [uuid.UUID(ledger_pb2.Account.FromString(o.payload).id) for o in engine2.execute(
        [c.CreateAccount("acct-0", "USD", True, False)]
        + [c.CreateAccount(f"acct-{i}", "USD", False, False) for i in range(1, 4)])]
    hold2 = uuid.uuid4()
    ids2 = iter([hold2])
    monkeypatch.setattr(engine2, "_new_id", lambda: next(ids2, None) or uuid.uuid4())
    results2 = engine2.execute(jobs(accounts2, hold2))
    assert len(sends) >= 4 and [r.code for r in results2] == codes
    whole = _rows(url2)
    order = {x: i for i, x in enumerate(sorted(accounts2))}
    # accounts are listed by id: line the two databases up by the accounts' roles
    streamed["balances"] = [streamed["balances"][sorted([a, b, d, e]).index(x)] for x in [a, b, d, e]]
    whole["balances"] = [whole["balances"][order[x]] for x in accounts2]
    assert streamed == whole

    with psycopg.connect(url) as conn:
        hold = conn.execute("SELECT state, posted_amount::text FROM holds WHERE transfer_id = %s",
                            (hold_id,)).fetchone()
        payloads = [bytes(r[0]) for r in conn.execute("SELECT payload FROM outbox ORDER BY sequence").fetchall()]
    assert hold == (2, "60")
    transfers = [events_pb2.LedgerEvent.FromString(p).transfer.request_id for p in payloads]
    assert transfers[-6:] == [*[f"later-{i}" for i in range(5)], "post"]  # events in order of arrival
    assert transfers.index("hold") < transfers.index("fund") < transfers.index("item-0")
    replay = engine.execute(jobs([a, b, d, e], hold_id))
    assert all(r.replayed for r in replay) and [r.payload for r in replay] == [r.payload for r in results]
    assert_ledger_consistent(url)
    assert_ledger_consistent(url2)


def test_a_batch_that_fails_after_parts_were_sent_writes_nothing_and_its_retry_commits_once(
    books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard of the last part finds a stale account: the parts already written roll back with it,
    and the retry writes every row once."""
    url, engine, metrics, (_, b, d, _) = books
    attempts = stale_first_write(monkeypatch)
    sends = _count_sends(monkeypatch)
    jobs = [c.CreateTransfer(f"t-{i}", b, d, 10, "USD", False, 0) for i in range(10)]
    assert [o.code for o in engine.execute(jobs)] == [0] * 10
    # Three parts ahead of the last, twice: the first attempt warm (its accounts were just created,
    # BEGIN and the locks go ahead alone), its retry on the read path (BEGIN goes with the first part).
    assert len(attempts) == 2 and sends == [2, 1, 1, 1, 2, 1, 1]
    value = metrics.registry.get_sample_value("ledger_batch_retries_total", {"cause": "stale_read"})
    assert value == 1 and metrics.registry.get_sample_value("ledger_warm_fallbacks_total") == 1
    rows = _rows(url)
    assert rows["transfers"] == (10,) and rows["entries"] == (20,)
    assert_ledger_consistent(url)


def test_a_batch_abandoned_half_way_leaves_nothing_and_the_engine_goes_on(
    books: Books, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug met while applying, after parts were sent: the connection is dropped with its
    transaction, and the engine splits the batch to isolate the job (as for any bug): the others
    commit once, the parts of the abandoned attempt are nowhere."""
    url, engine, _, (_, b, d, _) = books
    before = _rows(url)
    original = posting._run_command

    def failing(state: Any, cmd: Any) -> bytes:
        if cmd.request_id == "t-7":
            raise RuntimeError("impossible state")
        return original(state, cmd)

    monkeypatch.setattr(posting, "_run_command", failing)
    sends = _count_sends(monkeypatch)
    outcomes = engine.execute([c.CreateTransfer(f"t-{i}", b, d, 10, "USD", False, 0) for i in range(10)])
    assert sends[:2] == [2, 1]  # the first attempt (warm): BEGIN and the locks, then a part
    assert [o.code for o in outcomes] == [0] * 7 + [13] + [0] * 2  # INTERNAL for the one job only
    assert _rows(url)["transfers"] == (before["transfers"][0] + 9,)
    monkeypatch.setattr(posting, "_run_command", original)
    assert [o.code for o in engine.execute([c.CreateTransfer("after", b, d, 10, "USD", False, 0)])] == [0]
    assert _rows(url)["transfers"] == (before["transfers"][0] + 10,)
    assert_ledger_consistent(url)


def test_two_writers_racing_one_batch_in_parts_apply_it_once(books: Books) -> None:
    """Two replicas' engines receive the same CreateTransfers at once (a client retrying on another
    replica): whichever writes second meets the first's outcomes while its parts are on their way
    (a unique violation in a part, or the stored outcomes once the locks are its), retries and
    replays. Every item is written once and both callers get the same answer."""
    url, engine, _, (_, b, d, e) = books
    other = posting.PostingEngine(url, Metrics())
    for round_ in range(5):
        items = tuple(c.CreateTransfer(f"race-{round_}-{i}", (b, d, e)[i % 3], (d, e, b)[i % 3], 1 + i, "USD",
                                       False, 0) for i in range(20))
        batch = c.TransferBatch(f"race-{round_}", items, atomic=False)
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(lambda writer, jobs=[batch]: writer.execute(jobs)[0], (engine, other))
        assert first.code == second.code == 0
        assert first.payload == second.payload
        assert not (first.replayed and second.replayed)
    with psycopg.connect(url) as conn:
        counts = conn.execute("SELECT count(*), count(DISTINCT request_id) FROM transfers "
                              "WHERE request_id LIKE 'race-%'").fetchone()
    assert counts == (100, 100)
    assert_ledger_consistent(url)
