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
- server -> writer, first: `(WriterSettings fields, socket_dir)` (never on a command line); the writer
  answers `ready <pid>`, `taken` (another writer already serves socket_dir) or why it could not start.
- server -> writer: per job, as it is submitted, an 8-byte key and the pickled job; an empty message
  asks the writer to finish what it has received from that server and close its connection (a
  writer exits when it has no connection left).
- writer -> server: one pickled message per batch, `(outcomes, metric_updates)`, outcomes as `(key,
  Outcome)` in the batch's order; an empty message once it has finished, when asked to.
The writer batches exactly as the in-thread GroupCommitter does: everything already received, up to
the same bounds, applied in one transaction; nothing waits for a timer.

One writer for all the server processes of a host (`ledger-server --processes N`, replicas.py): with
a socket_dir, the writer also listens on `<socket_dir>/writer.sock`, and the other processes connect
there instead of starting their own (a connecting server says hello with its WriterSettings' fields,
which must equal the writer's). Why: N writers on the same accounts keep invalidating each other's
remembered rows, so the warm path (posting.py) paused itself past one connection, and each committed
batches a fraction of the size one writer would. One writer per socket_dir is elected by an exclusive
`flock` on `<socket_dir>/writer.lock`, which the kernel releases when its holder dies however it
dies: whoever finds no writer starts one, a second candidate answers `taken` and its server connects
to the winner. Each batch takes jobs from every connection in turn, answers each connection its own
outcomes, and sends the batch's metrics with the first connection's answer (each is counted once,
in one process's registry). The shared writer exits when its last server has gone. The socket
directory is private to the user (mode 0700, made by replicas.py): the socket itself needs no
password, as in PostgreSQL's own local sockets.

Failure: if the writer process dies, every job it held is answered UNAVAILABLE (it may have
committed: clients retry with the same request id, which is exactly-once) and a new writer is
started (shared: each server connects to the one elected, or starts it). If a server dies, the
writer reads end-of-file on its connection and drops it (exiting if it was the last); a batch it was
applying either commits or rolls back with its database connection, as with any crashed writer. A
shared writer also drops a server that is stuck (SEND_TIMEOUT_S), so no server can stall the others.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import itertools
import logging
import os
import pickle
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import astuple, dataclass
from multiprocessing.connection import Connection, wait
from typing import IO, cast

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
ELECTION_RETRY_S = 0.02  # a candidate lost the election: the winner is about to listen
HELLO_BYTES_MAX = 4096  # a connecting server's WriterSettings
CONNECTIONS_MAX = 64  # servers one shared writer serves (replicas.py runs at most 32 processes)
# A server that does not take its answers, or stops half way through a message, for this long
# (stopped, or stuck) is dropped: the writer must not block on one server's socket while the others
# wait. The dropped server sees its connection end, answers its jobs WRITER_RESTARTED (retryable)
# and connects again.
SEND_TIMEOUT_S = 5.0
SOCKET_NAME = "writer.sock"
LOCK_NAME = "writer.lock"
MetricUpdate = tuple[str, tuple[tuple[str, str], ...], str, float]


@dataclass(frozen=True)
class WriterSettings:
    """What a writer runs with; every server sharing one writer must ask for exactly these."""

    database_url: str
    max_jobs: int
    max_items: int
    warm_path: bool


class WriterProcessCommitter:
    """Drop-in for GroupCommitter (`submit`, `stop`) with the writer in a child process."""

    def __init__(
        self, database_url: str, metrics: Metrics, bounds: BatchBounds = DEFAULT_BOUNDS, warm_path: bool = True,
        socket_dir: str | None = None,
    ) -> None:
        """`socket_dir`: share one writer with the other servers given the same directory (see the
        module docstring); None: a writer of this server's own."""
        self._settings = WriterSettings(database_url, bounds.max_jobs, bounds.max_items, warm_path)
        self._socket_dir = socket_dir
        self._metrics = metrics
        self._queue_limit = bounds.queue_limit
        self._keys = itertools.count()
        # Jobs sent and not answered yet, by key; guarded by _send_lock together with the pipe, so a
        # restart fails exactly the jobs the dead writer held.
        self._waiting: dict[int, Future[Outcome]] = {}
        self._send_lock = threading.Lock()
        self._stopping = False
        self._deaths = 0
        # The writer this server started, if it did (a shared writer may have been started by another).
        self._process: subprocess.Popen[bytes] | None
        self._process, pipe, self._writer_pid = self._start_writer()
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
        return self._writer_pid

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
        # A shared writer may still serve other servers: it exits when its last one has gone.
        if self._process is not None and self._socket_dir is None:
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("the writer process did not stop in %.0f s; killing it", STOP_TIMEOUT_S)
                self._process.kill()
                self._process.wait()
        if self._pipe is not None:
            self._pipe.close()

    # -- the server's side --------------------------------------------------------------------------

    def _start_writer(self) -> tuple[subprocess.Popen[bytes] | None, Connection, int]:
        """A connection to a writer: the shared one if it serves, else one started here; with the
        process if this server started it, and the writer's pid."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._socket_dir is not None:
                connected = self._connect_shared(self._socket_dir)
                if connected is not None:
                    return None, *connected
            process, pipe, answer = self._spawn_writer()
            if answer.startswith(b"ready "):
                return process, pipe, int(answer.split()[1])
            process.wait()
            pipe.close()
            if answer != b"taken":
                raise RuntimeError(f"the writer process failed to start (exit {process.returncode}): "
                                   f"{answer.decode(errors='replace')}")
            if time.monotonic() > deadline:  # elected writers kept dying before this server reached one
                raise RuntimeError(f"no shared writer served in {START_TIMEOUT_S:.0f} s")
            time.sleep(ELECTION_RETRY_S)

    def _connect_shared(self, socket_dir: str) -> tuple[Connection, int] | None:
        """The shared writer, greeted with this server's settings; None if none serves."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(os.path.join(socket_dir, SOCKET_NAME))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            return None
        pipe = Connection(sock.detach())
        try:
            pipe.send(astuple(self._settings))
            if not pipe.poll(START_TIMEOUT_S):
                raise RuntimeError(f"the shared writer did not answer in {START_TIMEOUT_S:.0f} s")
            answer = pipe.recv_bytes()
        except (EOFError, OSError):  # it exited as this server connected (its last server had gone)
            pipe.close()
            return None
        if not answer.startswith(b"ready "):
            pipe.close()
            raise RuntimeError(f"the shared writer refused this server: {answer.decode(errors='replace')}")
        return pipe, int(answer.split()[1])

    def _spawn_writer(self) -> tuple[subprocess.Popen[bytes], Connection, bytes]:
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
            pipe.send((astuple(self._settings), self._socket_dir))
            if not pipe.poll(START_TIMEOUT_S):
                raise RuntimeError(f"the writer process did not start in {START_TIMEOUT_S:.0f} s")
            return process, pipe, pipe.recv_bytes()
        except (EOFError, OSError, RuntimeError) as error:
            process.kill()
            process.wait()
            pipe.close()
            raise RuntimeError(f"the writer process failed to start (exit {process.returncode}): {error}") from None

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
        log.error("the writer process %d is gone; answering its %d jobs UNAVAILABLE and restarting it",
                  self._writer_pid, len(self._waiting))
        with self._send_lock:
            assert self._pipe is not None
            self._pipe.close()
            self._pipe = None
            self._fail_waiting()
        if self._process is not None and self._socket_dir is not None:
            self._process.poll()  # reaped if it died; alive, it may still serve the other servers
        elif self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # its pipe closed but it lives on: make sure it is gone
                self._process.kill()
                self._process.wait()
        while not self._stopping:
            time.sleep(RESTART_DELAY_S[min(self._deaths, len(RESTART_DELAY_S) - 1)])
            self._deaths += 1
            try:
                process, pipe, pid = self._start_writer()
            except RuntimeError:
                log.exception("the writer process could not be restarted; trying again")
                continue
            with self._send_lock:
                self._process, self._pipe, self._writer_pid = process, pipe, pid
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
    # The servers decide when the writer stops (an empty message, or end-of-file when they die): a
    # Ctrl-C or a SIGTERM sent to the whole process group must not cut a batch short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.current_thread().name = "group-committer"  # as the writer thread is named (profiles)
    parser = argparse.ArgumentParser(prog="python -m ledger_server.writer_process")
    parser.add_argument("--fd", type=int, required=True, help="the socket shared with the server")
    pipe = Connection(parser.parse_args(argv).fd)
    logging.basicConfig(level=os.environ.get("LEDGER_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    election: tuple[socket.socket, IO[bytes]] | None = None
    try:
        fields, socket_dir = pipe.recv()
        settings = WriterSettings(*fields)
        if socket_dir is not None:
            election = _elect(socket_dir)
            if election is None:
                pipe.send_bytes(b"taken")
                return
            _bound_io(pipe.fileno())  # shared: one stuck server must not hold up the others
        metrics = RecordedMetrics()
        engine = PostingEngine(settings.database_url, cast(Metrics, metrics), warm_path=settings.warm_path)
        freeze_startup_heap()
    except Exception as error:  # the server reports it and fails to start
        pipe.send_bytes(f"{type(error).__name__}: {error}".encode())
        return
    servers = _Servers(pipe, election, settings)
    pipe.send_bytes(b"ready %d" % os.getpid())
    try:
        _serve(servers, engine, metrics, settings.max_jobs, settings.max_items)
    finally:
        engine.close()


def _elect(socket_dir: str) -> tuple[socket.socket, IO[bytes]] | None:
    """The listening socket of the one writer for `socket_dir` and its lock, or None if another
    writer holds the lock. The lock file stays open (and locked) until this writer resigns; the
    kernel releases it if the writer dies first, however it dies."""
    lock: IO[bytes] = open(os.path.join(socket_dir, LOCK_NAME), "ab")  # noqa: SIM115 (held until resign)
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    path = os.path.join(socket_dir, SOCKET_NAME)
    if os.path.exists(path):  # left by a writer that died: the lock proves nobody listens on it
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(CONNECTIONS_MAX)
    return listener, lock


class _Servers:
    """The connections of the servers this writer answers. New ones are greeted by a thread of
    their own, so a slow hello never holds up a batch; greeted ones reach the batching loop through
    a queue, which it notices by a byte on a socket pair it waits on with the connections."""

    def __init__(self, first: Connection, election: tuple[socket.socket, IO[bytes]] | None,
                 settings: WriterSettings) -> None:
        self.connections: list[Connection] = [first]
        self._settings = settings
        self._election = election
        self._greeted: queue.Queue[Connection] = queue.Queue()
        self._resigning = threading.Lock()  # a server is told `ready` only while this writer has not resigned
        self._resigned = False
        self.wake_socket, self._wake_writer = socket.socketpair()
        if election is not None:
            threading.Thread(target=self._accept, args=(election[0],), name="writer-accept", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:  # closed: this writer is leaving
                return
            _bound_io(sock.fileno())
            connection = Connection(sock.detach())
            try:
                if not connection.poll(START_TIMEOUT_S):
                    raise EOFError("no hello")
                hello = WriterSettings(*pickle.loads(connection.recv_bytes(HELLO_BYTES_MAX)))
                if hello != self._settings:  # (named, not shown: the database URL may hold a password)
                    differ = _differences(hello, self._settings)
                    connection.send_bytes(f"refused: settings differ from this writer's: {differ}".encode())
                    raise EOFError(f"settings differ: {differ}")
                if len(self.connections) + self._greeted.qsize() >= CONNECTIONS_MAX:  # (approximate: a bound)
                    connection.send_bytes(b"refused: too many servers")
                    raise EOFError("too many servers")
                with self._resigning:
                    if self._resigned:
                        raise EOFError("this writer is leaving")  # the server starts or finds the next one
                    connection.send_bytes(b"ready %d" % os.getpid())
                    self._greeted.put(connection)
            except (EOFError, OSError, pickle.UnpicklingError, TypeError) as error:
                log.warning("a server's connection to the writer was refused: %s", error)
                connection.close()
                continue
            self._wake_writer.send(b"x")

    def take_greeted(self) -> None:
        while True:
            try:
                self.connections.append(self._greeted.get_nowait())
            except queue.Empty:
                return

    def drop(self, connection: Connection) -> None:
        if connection in self.connections:
            self.connections.remove(connection)
        connection.close()

    def resign(self) -> None:
        """No server left: stop listening and give up the election, so a new writer can start at
        once while this one closes its database connection. A server greeted before this is still
        in the queue (take_greeted), and is served; none is greeted after."""
        with self._resigning:
            if self._resigned:
                return
            self._resigned = True
        if self._election is not None:
            listener, lock = self._election
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            lock.close()  # releases the flock


def _bound_io(fd: int) -> None:
    """Sends to this server's socket, and reads of a message it has begun, fail after SEND_TIMEOUT_S
    instead of blocking the writer (a writer of one server's own blocks instead: there is nobody
    else to serve). The writer reads a connection only once it is readable."""
    seconds = int(SEND_TIMEOUT_S)
    timeout = struct.pack("ll", seconds, int((SEND_TIMEOUT_S - seconds) * 1_000_000))
    with socket.socket(fileno=os.dup(fd)) as sock:  # the options belong to the socket, not the descriptor
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)


def _differences(hello: WriterSettings, settings: WriterSettings) -> str:
    return ", ".join(name for name in WriterSettings.__dataclass_fields__
                     if getattr(hello, name) != getattr(settings, name))


def _serve(servers: _Servers, engine: PostingEngine, metrics: RecordedMetrics, max_jobs: int, max_items: int) -> None:
    """Until no server is left: wait for jobs from any, take what each has sent in turn (up to the
    batch bounds), apply them as one batch, answer each server its own outcomes."""
    while True:
        if not servers.connections:
            servers.take_greeted()  # one greeted just now
            if not servers.connections:
                servers.resign()
                servers.take_greeted()  # greeted before the resignation: served until it leaves
                if not servers.connections:
                    return
        readable = wait([*servers.connections, servers.wake_socket])
        if servers.wake_socket in readable:
            servers.wake_socket.recv(4096)
            servers.take_greeted()
            readable.remove(servers.wake_socket)
        batch: list[tuple[Connection, int, c.Job]] = []
        goodbyes: list[Connection] = []
        items = 0
        pending = [conn for conn in readable if isinstance(conn, Connection)]
        while pending and len(batch) < max_jobs and items < max_items:
            more: list[Connection] = []
            for conn in pending:  # one message from each server in turn: none starves the others
                try:
                    message = conn.recv_bytes()
                except (EOFError, OSError):  # that server is gone: its jobs taken already still apply
                    servers.drop(conn)
                    continue
                if not message:
                    goodbyes.append(conn)
                    continue
                job: c.Job = pickle.loads(memoryview(message)[8:])
                batch.append((conn, int.from_bytes(message[:8], "little"), job))
                items += job_items(job)
                if len(batch) >= max_jobs or items >= max_items:
                    break
                if conn.poll(0):
                    more.append(conn)
            pending = more
        if batch:
            outcomes = apply_batch(engine, [job for _, _, job in batch])
            answers: dict[Connection, list[tuple[int, Outcome]]] = {}
            for (conn, key, _), outcome in zip(batch, outcomes, strict=True):
                answers.setdefault(conn, []).append((key, outcome))
            updates = metrics.drain()
            for conn, answer in answers.items():
                try:
                    conn.send_bytes(pickle.dumps((answer, updates), pickle.HIGHEST_PROTOCOL))
                except OSError as error:  # gone, or stuck past SEND_TIMEOUT_S (its outcomes are stored)
                    if isinstance(error, BlockingIOError):
                        log.warning("a server took no answers for %.0f s: its connection is dropped", SEND_TIMEOUT_S)
                    servers.drop(conn)
                    continue
                updates = []  # the batch's metrics go with one answer only
        for conn in goodbyes:
            with contextlib.suppress(OSError):
                conn.send_bytes(b"")
            servers.drop(conn)


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
