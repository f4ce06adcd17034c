"""The group-commit writer in a process of its own, so it never waits for the handlers' interpreter lock.

Why: in one process the writer shares CPython's interpreter lock with every gRPC handler thread and
waits for it after each database round trip. Measured with one server process at 800 transfers/s
(benchmarks/README.md, "Fixes made"): as a thread, batches of 3-4.5 jobs took 3.6-5.3 ms (their
reads' round trip alone 1.0-1.6 ms) and the writer was 91-94% busy; in its own process, batches of
1.9-2.5 jobs took 1.8-2.6 ms (reads 0.3-0.4 ms).

The writer is `python -m ledger_server.writer_process --fd N`, a fresh interpreter (not forked: the
server has gRPC and database threads, which fork does not copy; not multiprocessing's spawn, which
would re-run the embedding program's main module). The protocol, over one duplex socket pair framed
by multiprocessing.connection.Connection, pickles:
- server -> writer, first: `(database_url, max_jobs, max_items, warm_path)` (never on a command
  line); the writer answers `ready` or why it could not start.
- server -> writer: per job, as it is submitted, an 8-byte key and the pickled job; an empty message
  asks the writer to finish what it has received and exit.
- writer -> server: one pickled message per batch, `(outcomes, metric_updates)`, outcomes as `(key,
  Outcome)` in the batch's order; an empty message once it has finished, when asked to.
The writer batches exactly as the in-thread GroupCommitter does: everything already received, up to
the same bounds, applied in one transaction; nothing waits for a timer.

Failure: if the writer process dies, every job it held is answered UNAVAILABLE (it may have
committed: clients retry with the same request id, which is exactly-once) and a new writer is
started. If the server dies, the writer reads end-of-file and exits; a batch it was applying either
commits or rolls back with its connection, as with any crashed writer.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import cast

import grpc

from ledger_server import commands as c
from ledger_server.errors import transient
from ledger_server.gc_pauses import freeze_startup_heap
from ledger_server.group_commit import (
    DEFAULT_BOUNDS,
    BatchBounds,
    apply_batch,
    job_items,
    overloaded,
    shutting_down,
    wait_for_outcome,
)
from ledger_server.metrics import Metrics
from ledger_server.posting import Outcome, PostingEngine

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # a fresh interpreter imports psycopg, gRPC and protobuf: ~0.2 s here
RESTART_DELAY_S = (0.05, 0.2, 1.0, 5.0)  # after the writer died, by consecutive deaths
STOP_TIMEOUT_S = 30.0
MetricUpdate = tuple[str, tuple[tuple[str, str], ...], str, float]


class WriterProcessCommitter:
    """Drop-in for GroupCommitter (`submit`, `stop`) with the writer in a child process."""

    def __init__(
        self, database_url: str, metrics: Metrics, bounds: BatchBounds = DEFAULT_BOUNDS, warm_path: bool = True,
    ) -> None:
        self._database_url = database_url
        self._warm_path = warm_path
        self._metrics = metrics
        self._bounds = (bounds.max_jobs, bounds.max_items)
        self._queue_limit = bounds.queue_limit
        self._keys = itertools.count()
        # Jobs sent and not answered yet, by key; guarded by _send_lock together with the pipe, so a
        # restart fails exactly the jobs the dead writer held.
        self._waiting: dict[int, Future[Outcome]] = {}
        self._send_lock = threading.Lock()
        self._stopping = False
        self._deaths = 0
        self._process: subprocess.Popen[bytes]
        self._process, pipe = self._start_writer()
        self._pipe: Connection | None = pipe  # None while a dead writer is being replaced
        self._reader = threading.Thread(target=self._read_outcomes, name="writer-outcomes", daemon=True)
        self._reader.start()

    def submit(self, job: c.Job, timeout_s: float) -> Outcome:
        """Send a job to the writer and wait for its outcome (a timeout: see wait_for_outcome)."""
        message = pickle.dumps(job, pickle.HIGHEST_PROTOCOL)  # outside the lock: the costly part
        waiting: Future[Outcome] = Future()
        with self._send_lock:
            if self._stopping:
                raise shutting_down()
            if len(self._waiting) >= self._queue_limit:
                raise overloaded()
            if self._pipe is None:
                raise _writer_lost()
            key = next(self._keys)
            try:
                self._pipe.send_bytes(key.to_bytes(8, "little") + message)
            except OSError:
                raise _writer_lost() from None
            self._waiting[key] = waiting
            self._metrics.queue_depth.set(len(self._waiting))
        return wait_for_outcome(waiting, timeout_s)

    @property
    def writer_pid(self) -> int:
        """The writer process now serving (operations, tests)."""
        return self._process.pid

    def stop(self) -> None:
        """Finish everything sent, then stop the writer process."""
        with self._send_lock:
            self._stopping = True
            try:
                if self._pipe is not None:
                    self._pipe.send_bytes(b"")
            except OSError:
                pass
        self._reader.join(timeout=STOP_TIMEOUT_S)
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("the writer process did not stop in %.0f s; killing it", STOP_TIMEOUT_S)
            self._process.kill()
            self._process.wait()
        if self._pipe is not None:
            self._pipe.close()

    # -- the server's side --------------------------------------------------------------------------

    def _start_writer(self) -> tuple[subprocess.Popen[bytes], Connection]:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger_server.writer_process", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        pipe = Connection(ours.detach())
        try:
            pipe.send((self._database_url, *self._bounds, self._warm_path))
            if not pipe.poll(START_TIMEOUT_S):
                raise RuntimeError(f"the writer process did not start in {START_TIMEOUT_S:.0f} s")
            ready = pipe.recv_bytes()
        except (EOFError, OSError, RuntimeError) as error:
            process.kill()
            process.wait()
            pipe.close()
            raise RuntimeError(f"the writer process failed to start (exit {process.returncode}): {error}") from None
        if ready != b"ready":
            process.kill()
            process.wait()
            pipe.close()
            raise RuntimeError(f"the writer process failed to start: {ready.decode(errors='replace')}")
        return process, pipe

    def _read_outcomes(self) -> None:
        while True:
            assert self._pipe is not None  # only this thread replaces it
            try:
                message = self._pipe.recv_bytes()
            except (EOFError, OSError):
                if self._stopping:
                    with self._send_lock:
                        self._fail_waiting()
                    return
                self._restart_writer()
                if self._pipe is None:  # stopped while restarting
                    return
                continue
            if not message:  # the writer's answer to stop: everything sent was answered
                return
            outcomes, updates = pickle.loads(message)
            try:
                _replay(self._metrics, updates)
            except Exception:  # a metric is not worth a lost answer
                log.exception("the writer's metrics could not be recorded")
            with self._send_lock:
                resolved = [(self._waiting.pop(key), outcome) for key, outcome in outcomes]
                self._metrics.queue_depth.set(len(self._waiting))
            for waiting, outcome in resolved:
                waiting.set_result(outcome)
            self._deaths = 0

    def _restart_writer(self) -> None:
        """The writer died (killed, out of memory): answer what it held, start another. Meanwhile
        new jobs are refused UNAVAILABLE at once rather than parked."""
        log.error("the writer process exited (code %s); answering its %d jobs UNAVAILABLE and restarting it",
                  self._process.poll(), len(self._waiting))
        with self._send_lock:
            assert self._pipe is not None
            self._pipe.close()
            self._pipe = None
            self._fail_waiting()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # its pipe closed but it lives on: make sure it is gone
            self._process.kill()
            self._process.wait()
        while not self._stopping:
            time.sleep(RESTART_DELAY_S[min(self._deaths, len(RESTART_DELAY_S) - 1)])
            self._deaths += 1
            try:
                process, pipe = self._start_writer()
            except RuntimeError:
                log.exception("the writer process could not be restarted; trying again")
                continue
            with self._send_lock:
                self._process, self._pipe = process, pipe
            return

    def _fail_waiting(self) -> None:
        lost = _writer_lost()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(lost)
        self._waiting.clear()
        self._metrics.queue_depth.set(0)


def _writer_lost() -> Exception:
    return transient(grpc.StatusCode.UNAVAILABLE, "WRITER_RESTARTED",
                     "the writer restarted; the request may have committed: retry with the same request_id")


# -- the writer's side ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """The writer process: receive jobs, apply them in batches, answer each batch in one message."""
    # The server decides when the writer stops (an empty message, or end-of-file when it dies): a
    # Ctrl-C or a SIGTERM sent to the whole process group must not cut a batch short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.current_thread().name = "group-committer"  # as the writer thread is named (profiles)
    parser = argparse.ArgumentParser(prog="python -m ledger_server.writer_process")
    parser.add_argument("--fd", type=int, required=True, help="the socket shared with the server")
    pipe = Connection(parser.parse_args(argv).fd)
    logging.basicConfig(level=os.environ.get("LEDGER_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    try:
        database_url, max_jobs, max_items, warm_path = pipe.recv()
        metrics = RecordedMetrics()
        engine = PostingEngine(database_url, cast(Metrics, metrics), warm_path=warm_path)
        freeze_startup_heap()
    except Exception as error:  # the server reports it and fails to start
        pipe.send_bytes(f"{type(error).__name__}: {error}".encode())
        return
    pipe.send_bytes(b"ready")
    try:
        _serve(pipe, engine, metrics, max_jobs, max_items)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the server is gone: nobody to answer
    finally:
        engine.close()


def _serve(pipe: Connection, engine: PostingEngine, metrics: RecordedMetrics, max_jobs: int, max_items: int) -> None:
    stop = False
    while not stop:
        batch: list[tuple[int, c.Job]] = []
        items = 0
        message = pipe.recv_bytes()
        while True:
            if not message:
                stop = True
                break
            job: c.Job = pickle.loads(memoryview(message)[8:])
            batch.append((int.from_bytes(message[:8], "little"), job))
            items += job_items(job)
            if len(batch) >= max_jobs or items >= max_items or not pipe.poll(0):
                break
            message = pipe.recv_bytes()
        if batch:
            outcomes = apply_batch(engine, [job for _, job in batch])
            answer = [(key, outcome) for (key, _), outcome in zip(batch, outcomes, strict=True)]
            pipe.send_bytes(pickle.dumps((answer, metrics.drain()), pickle.HIGHEST_PROTOCOL))
    pipe.send_bytes(b"")


class RecordedMetrics:
    """The engine's metrics, recorded in the writer and replayed into the server's registry (the
    only one scraped). Mirrors the calls the engine makes: `.x.observe(v)`, `.x.inc()`,
    `.x.labels(k=v).inc()`."""

    def __init__(self) -> None:
        self._updates: list[MetricUpdate] = []

    def __getattr__(self, name: str) -> _RecordedMetric:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RecordedMetric(self._updates.append, name, ())

    def drain(self) -> list[MetricUpdate]:
        updates, self._updates = self._updates, []
        return updates


class _RecordedMetric:
    def __init__(self, record: Callable[[MetricUpdate], None], name: str, labels: tuple[tuple[str, str], ...]) -> None:
        self._record, self._name, self._labels = record, name, labels

    def labels(self, **labels: str) -> _RecordedMetric:
        return _RecordedMetric(self._record, self._name, tuple(sorted(labels.items())))

    def observe(self, value: float) -> None:
        self._record((self._name, self._labels, "observe", value))

    def inc(self, value: float = 1.0) -> None:
        self._record((self._name, self._labels, "inc", value))


def _replay(metrics: Metrics, updates: list[MetricUpdate]) -> None:
    for name, labels, method, value in updates:
        metric = getattr(metrics, name)
        if labels:
            metric = metric.labels(**dict(labels))
        getattr(metric, method)(value)


if __name__ == "__main__":
    main()
