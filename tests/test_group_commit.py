"""The group committer seen from the event loop (`GroupCommitter.submit_async`), on a real database:
the writer is held by an advisory lock another connection keeps on an account, so the jobs queue.

* jobs queued from one loop are applied in one batch, in order, and every coroutine gets its own
  outcome (a rejected transfer does not fail its neighbours);
* a coroutine that times out gets DEADLINE_EXCEEDED / TIMEOUT, and its job still commits once the
  writer is free: a retry with the same request id replays it, nothing is applied twice;
* a coroutine whose caller went away (cancelled) leaves its job to commit the same way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import grpc
import psycopg
import pytest

from ledger.v1 import ledger_pb2
from ledger_server import commands as c
from ledger_server.errors import LedgerError
from ledger_server.group_commit import GroupCommitter
from ledger_server.ids import account_lock_key
from ledger_server.metrics import Metrics
from ledger_server.posting import Outcome, PostingEngine
from tests.invariants import assert_ledger_consistent

Books = tuple[str, GroupCommitter, Metrics, list[uuid.UUID]]


@pytest.fixture
def books(new_database: Callable[[], str]) -> Iterator[Books]:
    url = new_database()
    metrics = Metrics()
    committer = GroupCommitter(PostingEngine(url, metrics), metrics)
    assert committer.submit(c.CreateAsset("asset", "USD", 2), 10).code == 0
    accounts = []
    for i in range(3):  # acct-0 may not go below zero
        outcome = committer.submit(c.CreateAccount(f"acct-{i}", "USD", i == 0, False), 10)
        accounts.append(uuid.UUID(ledger_pb2.Account.FromString(outcome.payload).id))
    try:
        yield url, committer, metrics, accounts
    finally:
        committer.stop()


class _Held:
    """Another connection holding an account's advisory lock: the writer waits for it."""

    def __init__(self, url: str, account: uuid.UUID) -> None:
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute("SELECT pg_advisory_lock(%s)", (account_lock_key(account),))

    def release(self) -> None:
        self._conn.execute("SELECT pg_advisory_unlock_all()")
        self._conn.close()


def _batches(metrics: Metrics) -> float:
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "ledger_batch_jobs_count":
                return sample.value
    raise AssertionError("no batch metric")


def test_coroutines_of_one_loop_share_a_batch_and_each_gets_its_outcome(books: Books) -> None:
    url, committer, metrics, (poor, b, d) = books
    held = _Held(url, d)
    # The writer takes the first job and waits for the lock on d; the rest queue behind it.
    jobs: list[c.Job] = [c.CreateTransfer("first", b, d, 1, "USD", False, 0)]
    jobs += [c.CreateTransfer(f"t-{i}", b, poor if i % 2 else d, 10 + i, "USD", False, 0) for i in range(8)]
    jobs.append(c.CreateTransfer("too-much", poor, b, 10**9, "USD", False, 0))  # rejected: poor cannot pay

    async def submit_all() -> list[Outcome]:
        tasks = [asyncio.create_task(committer.submit_async(job, 10)) for job in jobs]
        await asyncio.sleep(0.3)
        before = _batches(metrics)
        held.release()
        outcomes = await asyncio.gather(*tasks)
        assert _batches(metrics) - before <= 2, "the queued jobs were applied in one batch (after the first)"
        return outcomes

    outcomes = asyncio.run(submit_all())
    codes = [o.code for o in outcomes]
    assert codes[:-1] == [0] * 9 and codes[-1] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    amounts = [int(ledger_pb2.Transfer.FromString(o.payload).amount) for o in outcomes[:-1]]
    assert amounts == [1] + [10 + i for i in range(8)]
    assert_ledger_consistent(url)


@pytest.mark.parametrize("caller", ["times out", "goes away"])
def test_a_job_whose_caller_stopped_waiting_still_commits_once(books: Books, caller: str) -> None:
    url, committer, _, (_, b, d) = books
    job = c.CreateTransfer("late", b, d, 7, "USD", False, 0)
    held = _Held(url, d)

    async def wait_then_stop() -> None:
        if caller == "times out":
            with pytest.raises(LedgerError) as raised:
                await committer.submit_async(job, 0.2)
            assert (raised.value.code, raised.value.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "TIMEOUT")
        else:
            waiting = asyncio.create_task(committer.submit_async(job, 10))
            await asyncio.sleep(0.2)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting

    asyncio.run(wait_then_stop())
    held.release()
    retried = committer.submit(job, 10)  # the client's retry, same request id and payload
    assert retried.code == 0 and retried.replayed
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM transfers WHERE amount = 7").fetchone()
    assert row == (1,)
    assert_ledger_consistent(url)
