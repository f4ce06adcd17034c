"""Group commit: concurrent requests are queued and applied together in one transaction.

The in-thread writer; the server runs the same loop in a process of its own (writer_process.py).
One writer thread per server takes everything waiting (up to the batch bounds) and hands it to the
posting engine. Nothing waits for a timer: under light load a request is committed at once; under
heavy load the queue fills while the previous batch commits, and the next batch is larger. The
queue is bounded; past it requests are shed with RESOURCE_EXHAUSTED instead of piling up.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol

import grpc

from ledger_server import commands as c
from ledger_server.errors import LedgerError, transient
from ledger_server.metrics import Metrics
from ledger_server.posting import Outcome, PostingEngine

log = logging.getLogger(__name__)

_STOP = object()


class Committer(Protocol):
    """What handlers need of the writer, in a thread (GroupCommitter) or in a process of its own
    (writer_process.WriterProcessCommitter, the server's default)."""

    def submit(self, job: c.Job, timeout_s: float) -> Outcome: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class BatchBounds:
    """How much one batch may hold, and how many jobs may wait for a writer (past that: shed)."""

    max_jobs: int = 512
    max_items: int = 16_000  # CreateTransfers items count one each; a call holds at most 8,000
    queue_limit: int = 10_000

    def __post_init__(self) -> None:
        assert 1 <= self.max_jobs <= 8192 and self.max_items >= 8000 and self.queue_limit >= self.max_jobs


DEFAULT_BOUNDS = BatchBounds()


class GroupCommitter:
    def __init__(self, engine: PostingEngine, metrics: Metrics, bounds: BatchBounds = DEFAULT_BOUNDS) -> None:
        self._engine = engine
        self._metrics = metrics
        self._max_jobs = bounds.max_jobs
        self._max_items = bounds.max_items
        self._queue: queue.Queue[object] = queue.Queue(maxsize=bounds.queue_limit)
        self._thread = threading.Thread(target=self._run, name="group-committer", daemon=True)
        self._stopping = False
        self._thread.start()

    def submit(self, job: c.Job, timeout_s: float) -> Outcome:
        """Queue a job and wait for its outcome (a timeout: see wait_for_outcome)."""
        if self._stopping:
            raise shutting_down()
        future: Future[Outcome] = Future()
        try:
            self._queue.put_nowait((job, future))
        except queue.Full:
            raise overloaded() from None
        self._metrics.queue_depth.set(self._queue.qsize())
        return wait_for_outcome(future, timeout_s)

    def stop(self) -> None:
        """Finish everything queued, then stop the writer thread."""
        self._stopping = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self._engine.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            items = _size(first)
            stop_after = False
            while len(batch) < self._max_jobs and items < self._max_items:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                batch.append(nxt)
                items += _size(nxt)
            self._metrics.queue_depth.set(self._queue.qsize())
            self._commit(batch)
            if stop_after:
                return

    def _commit(self, batch: list[object]) -> None:
        jobs = [entry[0] for entry in batch]  # type: ignore[index]
        futures: list[Future[Outcome]] = [entry[1] for entry in batch]  # type: ignore[index]
        for future, outcome in zip(futures, apply_batch(self._engine, jobs), strict=True):
            future.set_result(outcome)


def wait_for_outcome(future: Future[Outcome], timeout_s: float) -> Outcome:
    """A timeout does not cancel the job: it may still commit, which is why clients retry with the
    same request id."""
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        raise transient(
            grpc.StatusCode.DEADLINE_EXCEEDED, "TIMEOUT", "not committed in time; retry with the same request_id"
        ) from None


def overloaded() -> LedgerError:
    return transient(grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED", "the commit queue is full; retry later")


def shutting_down() -> LedgerError:
    return transient(grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down")


def apply_batch(engine: PostingEngine, jobs: list[c.Job]) -> list[Outcome]:
    """Every job's outcome; the writer (thread or process) survives anything a batch raises."""
    try:
        outcomes = engine.execute(jobs)
    except LedgerError as error:
        outcomes = [Outcome.of_error(error)] * len(jobs)
    except Exception:
        log.exception("group commit failed")
        internal = transient(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; nothing was written")
        outcomes = [Outcome.of_error(internal)] * len(jobs)
    assert len(outcomes) == len(jobs), "one outcome per job"
    return outcomes


def job_items(job: c.Job) -> int:
    """A job's weight against the batch's item bound: a CreateTransfers call counts its items."""
    return len(job.items) if isinstance(job, c.TransferBatch) else 1


def _size(entry: object) -> int:
    return job_items(entry[0])  # type: ignore[index]
