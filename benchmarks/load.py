"""The load generator: separate processes, so its CPU is its own and can be counted.

The coordinator starts LOAD_PROCESSES workers once (spawned, never forked: gRPC does not survive a
fork) and sends each phase to all of them. A phase is closed-loop (N calls in flight, each session
sending its next call when the previous one answered: coroutines of one asyncio loop against gRPC
targets, threads against the naive ledger) or open-loop (calls sent on a Poisson schedule whatever
the answers; latency is measured from the intended send time, so a stalled server is charged for
every call it delayed: no coordinated omission). Only calls that complete inside the measurement
window (open loop: that were due inside it) count; the warm-up before it is discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import random
import resource
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import psycopg

from benchmarks import auth
from benchmarks.naive_ledger import NaiveClient
from benchmarks.workloads import Accounts, Call, Session, new_session
from ledger.v1 import ledger_pb2_grpc
from ledger_server.gc_pauses import freeze_startup_heap

CALL_TIMEOUT_S = 30.0
OPEN_LOOP_OUTSTANDING_MAX = 4000  # past this many unanswered calls the sender waits (still charged)
LATE_SEND_S = 0.001
CLOSE_GRACE_S = 0.5
GRPC_OPTIONS = [("grpc.max_receive_message_length", 32 * 1024 * 1024),
                ("grpc.max_send_message_length", 32 * 1024 * 1024)]


@dataclass(frozen=True)
class PhaseSpec:
    """One measured run of one workload against one target, as sent to every worker."""

    name: str
    target_kind: str  # "grpc" (the ledger or the echo server) or "naive" (psycopg, no RPC)
    target: str  # host:port, or a database URL for "naive"
    workload: str
    concurrency: int  # closed loop: calls in flight in total; open loop: unused
    start_at: float  # time.monotonic() when the warm-up starts (CLOCK_MONOTONIC is system-wide)
    warmup_s: float
    duration_s: float
    open_rate: float = 0.0  # open loop: calls per second offered in total; 0 means closed loop
    accounts: Accounts | None = None
    naive_accounts: int = 0
    naive_hot: int = 0
    batch_size: int = 1000
    seed: int = 1
    connections: int = 1  # gRPC connections per load process: a multi-process server needs several
    # Closed loop against a gRPC target: the calls in flight as coroutines of one asyncio loop over
    # grpc.aio channels (see _closed_loop_async); False: one thread per call in flight, sync stubs.
    aio_client: bool = True

    @property
    def window(self) -> tuple[float, float]:
        begin = self.start_at + self.warmup_s
        return begin, begin + self.duration_s


@dataclass
class WorkerReport:
    calls: int = 0
    transfers: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_us: array[int] = field(default_factory=lambda: array("q"))
    per_second: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    late_sends: int = 0

    def merge(self, other: WorkerReport) -> None:
        self.calls += other.calls
        self.transfers += other.transfers
        self.errors.update(other.errors)
        self.latencies_us.extend(other.latencies_us)
        if len(self.per_second) < len(other.per_second):
            self.per_second.extend([0] * (len(other.per_second) - len(self.per_second)))
        for i, n in enumerate(other.per_second):
            self.per_second[i] += n
        self.cpu_s += other.cpu_s
        self.late_sends += other.late_sends


class _Sink:
    """Where one worker's threads record completions (list appends are atomic under the GIL)."""

    def __init__(self, spec: PhaseSpec) -> None:
        self.begin, self.end = spec.window
        self.report = WorkerReport(per_second=[0] * (int(spec.duration_s) + 1))
        self._lock = threading.Lock()

    def ok(self, due: float, done: float, transfers: int) -> None:
        if not self.begin <= due < self.end:
            return
        with self._lock:
            r = self.report
            r.calls += 1
            r.transfers += transfers
            r.latencies_us.append(int((done - due) * 1e6))
            r.per_second[min(int(done - self.begin), len(r.per_second) - 1)] += 1

    def failed(self, due: float, code: str) -> None:
        if self.begin <= due < self.end:
            with self._lock:
                self.report.errors[code] += 1


def _transfers_in(call: Call, response: Any) -> int:
    if call.method == "CreateTransfers":
        return sum(1 for r in response.results if r.WhichOneof("outcome") == "transfer")
    return call.transfers


# -- one worker process ---------------------------------------------------------------------------


def worker_main(conn: multiprocessing.connection.Connection, index: int, workers: int) -> None:
    """Serve phases until told to stop (None); one channel per gRPC target, kept across phases."""
    channels: dict[str, grpc.Channel] = {}
    freeze_startup_heap()  # a load process's own collector pauses would count as the server's latency
    try:
        while True:
            spec = conn.recv()
            if spec is None:
                return
            try:
                report = _run_phase(spec, index, workers, channels)
            except Exception as error:  # report it as the phase's failure; stay up for the next
                report = WorkerReport(errors=Counter({f"load process: {type(error).__name__}: {error}": 1}))
            conn.send(report)
    finally:
        for channel in channels.values():
            channel.close()


def _share(total: int, index: int, workers: int) -> int:
    return total // workers + (1 if index < total % workers else 0)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _channel(channels: dict[str, grpc.Channel], target: str, index: int) -> grpc.Channel:
    """The index-th connection to target. Channels with equal arguments share one connection (the
    global subchannel pool), so each gets its own pool: the kernel spreads connections, not calls,
    over the processes of a multi-process server."""
    key = f"{target}#{index}"
    if key not in channels:
        options = GRPC_OPTIONS + ([("grpc.use_local_subchannel_pool", 1)] if index else [])
        channels[key] = auth.channel(target, options)
    return channels[key]


def _run_phase(spec: PhaseSpec, index: int, workers: int, channels: dict[str, grpc.Channel]) -> WorkerReport:
    sink = _Sink(spec)
    threads: list[threading.Thread] = []
    closers: list[Callable[[], None]] = []
    seed = spec.seed * 1000 + index
    if spec.open_rate > 0:
        assert spec.target_kind == "grpc" and spec.accounts is not None
        rate = spec.open_rate / workers
        session = new_session(spec.workload, spec.accounts, random.Random(seed), f"{spec.name}-w{index}", 1)
        threads.append(threading.Thread(
            target=_open_loop, args=(spec.target, spec.connections, session, rate, spec, sink, seed)))
    elif spec.target_kind == "grpc" and spec.aio_client:
        sessions = [_closed_session(spec, index, seed, t) for t in range(_share(spec.concurrency, index, workers))]
        threads.append(threading.Thread(target=_closed_loop_aio, args=(spec, sessions, sink)))
    else:
        stubs = [ledger_pb2_grpc.LedgerStub(_channel(channels, spec.target, i)) for i in range(spec.connections)] \
            if spec.target_kind == "grpc" else []
        for t in range(_share(spec.concurrency, index, workers)):
            if spec.target_kind == "naive":
                try:
                    client = NaiveClient(spec.target, spec.naive_accounts, spec.naive_hot,
                                         random.Random(seed * 1000 + t))
                except psycopg.Error as error:  # e.g. max_connections reached on a shared server
                    sink.report.errors[f"connect: {type(error).__name__}"] += 1
                    continue
                run = _naive_runner(client)
                closers.append(client.close)
            else:
                assert stubs
                run = _grpc_runner(stubs[t % len(stubs)], _closed_session(spec, index, seed, t))
            loop = threading.Thread(target=_closed_loop, args=(run, spec, sink), daemon=True)
            threads.append(loop)
    for thread in threads:
        thread.start()
    begin, end = spec.window
    time.sleep(max(0.0, begin - time.monotonic()))
    cpu_begin = _cpu_s()
    time.sleep(max(0.0, end - time.monotonic()))
    sink.report.cpu_s = _cpu_s() - cpu_begin
    for thread in threads:
        thread.join(timeout=CALL_TIMEOUT_S + 5)
    # Database connections outlive the window a little, so the coordinator's last look at the
    # PostgreSQL processes still finds their backends (an exited process's CPU is lost).
    time.sleep(max(0.0, end + CLOSE_GRACE_S - time.monotonic()))
    for close in closers:
        close()
    return dataclasses.replace(sink.report, errors=Counter(sink.report.errors))


def _closed_session(spec: PhaseSpec, index: int, seed: int, t: int) -> Session:
    """The t-th closed-loop session of load process `index`: its own calls, from its own seed."""
    assert spec.accounts is not None
    return new_session(spec.workload, spec.accounts, random.Random(seed * 1000 + t), f"{spec.name}-w{index}-t{t}",
                       spec.batch_size)


# -- closed loop -----------------------------------------------------------------------------------

# A runner prepares its next call (not timed) and returns a function that makes it (timed) and
# returns how many transfers it created, or raises.
Runner = Callable[[], Callable[[], int]]


def _grpc_runner(stub: Any, session: Session) -> Runner:
    def prepare() -> Callable[[], int]:
        call = session.next_call()
        method = getattr(stub, call.method)

        def send() -> int:
            try:
                response = method(call.request, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError:
                session.on_result(call, None)
                raise
            session.on_result(call, response)
            return _transfers_in(call, response)

        return send

    return prepare


def _naive_runner(client: NaiveClient) -> Runner:
    def prepare() -> Callable[[], int]:
        debit, credit, amount = client.next_pair()

        def send() -> int:
            client.transfer(debit, credit, amount)
            return 1

        return send

    return prepare


def _closed_loop(runner: Runner, spec: PhaseSpec, sink: _Sink) -> None:
    time.sleep(max(0.0, spec.start_at - time.monotonic()))
    _, end = spec.window
    while True:
        send = runner()
        started = time.monotonic()
        if started >= end:
            return
        try:
            transfers = send()
        except grpc.RpcError as error:
            sink.failed(started, error.code().name)
            continue
        except Exception as error:  # the naive baseline: a database error
            sink.failed(started, type(error).__name__)
            continue
        sink.ok(started, time.monotonic(), transfers)


def _aio_stubs(target: str, connections: int) -> tuple[list[grpc.aio.Channel], list[Any]]:
    """`connections` grpc.aio channels to target, each its own connection (as _channel's), and a
    stub on each."""
    channels = [grpc.aio.insecure_channel(
        target, options=GRPC_OPTIONS + ([("grpc.use_local_subchannel_pool", 1)] if i else []))
        for i in range(connections)]
    return channels, [ledger_pb2_grpc.LedgerStub(channel) for channel in channels]


def _closed_loop_aio(spec: PhaseSpec, sessions: list[Session], sink: _Sink) -> None:
    """The closed loop's calls as coroutines of one asyncio loop over grpc.aio channels: the same
    calls, each sent when the previous one of its session answered, without a thread per call in
    flight and the sync stub's hand-off to the channel's polling thread. Less load-generator CPU
    per call, which the server shares on this machine (benchmarks/README.md)."""
    asyncio.run(_closed_loop_async(spec, sessions, sink))


async def _closed_loop_async(spec: PhaseSpec, sessions: list[Session], sink: _Sink) -> None:
    loop = asyncio.get_running_loop()  # its clock is time.monotonic(), the spec's clock
    channels, stubs = _aio_stubs(spec.target, spec.connections)
    metadata = (("authorization", f"Bearer {auth.run_key()}"),)
    _, end = spec.window

    async def client(stub: Any, session: Session) -> None:
        await asyncio.sleep(max(0.0, spec.start_at - loop.time()))
        while True:
            call = session.next_call()
            started = loop.time()
            if started >= end:
                return
            try:
                response = await getattr(stub, call.method)(call.request, timeout=CALL_TIMEOUT_S, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                session.on_result(call, None)
                sink.failed(started, error.code().name)
                continue
            session.on_result(call, response)
            sink.ok(started, loop.time(), _transfers_in(call, response))

    try:
        await asyncio.gather(*(client(stubs[t % len(stubs)], session) for t, session in enumerate(sessions)))
    finally:
        for channel in channels:
            await channel.close()


# -- open loop -------------------------------------------------------------------------------------


def _open_loop(target: str, connections: int, session: Session, rate: float, spec: PhaseSpec, sink: _Sink,
               seed: int) -> None:
    """Poisson arrivals at `rate`, spread over the connections in turn; each call is charged from
    the moment it was due. Sent from an asyncio loop over grpc.aio channels: the sync client's
    futures cost ~300 µs of client CPU per call here against ~210 µs (a hand-off to the channel's
    polling thread per call), CPU the server shares on this machine (benchmarks/README.md)."""
    asyncio.run(_open_loop_async(target, connections, session, rate, spec, sink, seed))


async def _open_loop_async(target: str, connections: int, session: Session, rate: float, spec: PhaseSpec,
                           sink: _Sink, seed: int) -> None:
    assert rate > 0 and connections >= 1
    loop = asyncio.get_running_loop()  # its clock is time.monotonic(), the spec's clock
    channels, stubs = _aio_stubs(target, connections)
    metadata = (("authorization", f"Bearer {auth.run_key()}"),)
    arrivals = random.Random(seed + 7)
    slots = asyncio.Semaphore(OPEN_LOOP_OUTSTANDING_MAX)
    in_flight: set[asyncio.Task[None]] = set()
    _, end = spec.window
    due = spec.start_at
    late = turn = 0

    async def send(stub: Any, call: Call, due: float) -> None:
        try:
            response = await getattr(stub, call.method)(call.request, timeout=CALL_TIMEOUT_S, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            sink.failed(due, error.code().name)
            session.on_result(call, None)
        else:
            sink.ok(due, loop.time(), _transfers_in(call, response))
            session.on_result(call, response)
        finally:
            slots.release()

    try:
        while True:
            due += arrivals.expovariate(rate)
            if due >= end:
                break
            call = session.next_call()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -LATE_SEND_S and due >= sink.begin:
                late += 1
            await slots.acquire()
            stub, turn = stubs[turn], (turn + 1) % len(stubs)
            task = loop.create_task(send(stub, call, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:  # the stragglers
            await asyncio.wait(in_flight, timeout=CALL_TIMEOUT_S)
    finally:
        for channel in channels:
            await channel.close()
    sink.report.late_sends = late


# -- the pool, seen from the coordinator -----------------------------------------------------------


class LoadPool:
    """LOAD processes, started once and reused by every phase."""

    def __init__(self, processes: int) -> None:
        assert 1 <= processes <= 16
        context = multiprocessing.get_context("spawn")
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(
                target=worker_main, args=(child, index, processes), name=f"load-{index}", daemon=True
            )
            proc.start()
            self._pipes.append(parent)
            self._procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    @property
    def size(self) -> int:
        return len(self._procs)

    def run(self, spec: PhaseSpec) -> WorkerReport:
        self.start(spec)
        return self.collect(spec)

    def start(self, spec: PhaseSpec) -> None:
        for pipe in self._pipes:
            pipe.send(spec)

    def collect(self, spec: PhaseSpec) -> WorkerReport:
        """Wait for every worker's report of `spec` and add them up."""
        total = WorkerReport()
        deadline = spec.window[1] + CALL_TIMEOUT_S + 30
        for pipe in self._pipes:
            if not pipe.poll(max(1.0, deadline - time.monotonic())):
                raise TimeoutError(f"a load process did not finish phase {spec.name}")
            total.merge(pipe.recv())
        return total

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(None)
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
