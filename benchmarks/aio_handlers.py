"""CreateTransfer served by the sync gRPC server against grpc.aio, over the real posting engine.

    python -m benchmarks.aio_handlers                      # c=16 and 64, 8 s each, twice, alternated
    python -m benchmarks.aio_handlers --levels 64 --seconds 5 --reps 1
    python -m benchmarks.aio_handlers --levels 64 --open-rates 700,1000   # + open loop: the tail

The question it answers (benchmarks/README.md, "Proposed engine changes", 2): how much of the
ledger's per-call cost is the sync server parking one handler thread per call on the writer's
future. Both servers run the same validation, request hash and group-commit writer on the same
database, with no interceptors (no access control, metering or rate limits: the real server adds
those to both alike). The sync one is the ledger's model: 64 pool threads, each waiting for its
job's outcome. The aio one queues the job with an asyncio future and the writer resolves a whole
batch with one `call_soon_threadsafe`. `proc` (`--servers sync,proc`) is the sync
one with the writer in a process of its own, as the ledger now runs it (writer_process.py). Each
runs in its own process (CPU metered from /proc, its writer process included), loaded closed-loop
by the harness's load processes (`benchmarks/load.py`, uniform transfers over 10,000 accounts).
A prototype for measuring, not a server: the ledger is not switched to aio.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
import psutil

from benchmarks.databases import PostgresServer
from benchmarks.load import LoadPool, PhaseSpec
from benchmarks.results import phase_figures
from benchmarks.workloads import Accounts
from ledger.v1 import ledger_pb2
from ledger_server import commands as c
from ledger_server import validation as v
from ledger_server.gc_pauses import freeze_startup_heap
from ledger_server.group_commit import Committer, GroupCommitter
from ledger_server.metrics import Metrics
from ledger_server.migrate import migrate
from ledger_server.posting import Outcome, PostingEngine
from ledger_server.writer_process import WriterProcessCommitter

ACCOUNTS = 10_000
PORT = 50_990
Resolver = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Outcome]"]


class AsyncCommitter(GroupCommitter):
    """The group-commit writer, answering an event loop: one wake-up of the loop per batch."""

    def submit_async(self, job: c.Job, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Outcome]:
        outcome: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put_nowait((job, (loop, outcome)))
        return outcome

    def _commit(self, batch: list[object]) -> None:
        entries: list[tuple[c.Job, Resolver]] = batch  # type: ignore[assignment]
        outcomes = self._engine.execute([job for job, _ in entries])
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
        for (_, (loop, waiting)), outcome in zip(entries, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((waiting, outcome))
        for loop, resolved in by_loop.items():
            loop.call_soon_threadsafe(_resolve, resolved)


def _resolve(resolved: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    for waiting, outcome in resolved:
        if not waiting.done():
            waiting.set_result(outcome)


def _handler(behavior: Any) -> grpc.GenericRpcHandler:
    create = grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=ledger_pb2.CreateTransferRequest.FromString,
        response_serializer=lambda payload: payload)
    return grpc.method_handlers_generic_handler("ledger.v1.Ledger", {"CreateTransfer": create})


def serve(kind: str, port: int, url: str) -> None:
    """One server process; prints `ready` once it listens."""
    freeze_startup_heap()
    if kind in ("sync", "proc"):
        committer: Committer = (WriterProcessCommitter(url, Metrics()) if kind == "proc"
                                else GroupCommitter(PostingEngine(url, Metrics()), Metrics()))

        def create(request: ledger_pb2.CreateTransferRequest, context: grpc.ServicerContext) -> bytes:
            job = v.create_transfer(request)
            job.request_hash()
            return committer.submit(job, 10.0).payload

        server = grpc.server(futures.ThreadPoolExecutor(64))
        server.add_generic_rpc_handlers((_handler(create),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        print("ready", flush=True)
        server.wait_for_termination()
        return
    writer = AsyncCommitter(PostingEngine(url, Metrics()), Metrics())

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def create(request: ledger_pb2.CreateTransferRequest, context: Any) -> bytes:
            job = v.create_transfer(request)
            job.request_hash()
            return (await writer.submit_async(job, loop)).payload

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_handler(create),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def _prepare(url: str) -> Accounts:
    migrate(url)
    engine = PostingEngine(url, Metrics())
    try:
        assert engine.execute([c.CreateAsset("bench-asset", "USD", 2)])[0].code == 0
        ids: list[str] = []
        for start in range(0, ACCOUNTS, 500):
            outcomes = engine.execute([c.CreateAccount(f"bench-acct-{i}", "USD", False, False)
                                       for i in range(start, start + 500)])
            ids += [ledger_pb2.Account.FromString(o.payload).id for o in outcomes]
    finally:
        engine.close()
    return Accounts("USD", ids, ids[:10], ids[:10])


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of a server and its children (the writer process of `proc`)."""
    return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])


def measure(url: str, levels: Sequence[int], seconds: float, reps: int,
            open_rates: Sequence[float] = (), kinds: Sequence[str] = ("sync", "aio")) -> list[dict[str, Any]]:
    accounts = _prepare(url)
    pool = LoadPool(4)
    rows: list[dict[str, Any]] = []
    try:
        for rep in range(reps):
            for kind in kinds:
                server = subprocess.Popen([sys.executable, "-m", "benchmarks.aio_handlers", "--serve", kind, url],
                                          stdout=subprocess.PIPE)
                try:
                    assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
                    process = psutil.Process(server.pid)
                    # closed loop at each level (rate 0), then open loop at each rate (level 0)
                    for level, rate in [(level, 0.0) for level in levels] + [(0, rate) for rate in open_rates]:
                        spec = PhaseSpec(
                            name=f"{kind}-{level}-{rate:.0f}-{rep}", target_kind="grpc",
                            target=f"127.0.0.1:{PORT}", workload="uniform", concurrency=level,
                            start_at=time.monotonic() + 0.5, warmup_s=min(2.0, seconds / 2), duration_s=seconds,
                            open_rate=rate, accounts=accounts, seed=rep * 100 + level + int(rate))
                        pool.start(spec)
                        begin, end = spec.window
                        time.sleep(max(0.0, begin - time.monotonic()))
                        cpu0 = _cpu(process)
                        time.sleep(max(0.0, end - time.monotonic()))
                        cpu = _cpu(process) - cpu0
                        report = pool.collect(spec)
                        figures = phase_figures(report, seconds)
                        rows.append({"server": kind, "concurrency": level or f"open {rate:,.0f}/s",
                                     "calls_per_s": figures["calls_per_s"],
                                     "p50_ms": figures["latency_ms"]["p50"], "p99_ms": figures["latency_ms"]["p99"],
                                     "p999_ms": figures["latency_ms"]["p999"],
                                     "server_us_per_call": 1e6 * cpu / max(1, report.calls),
                                     "errors": sum(report.errors.values())})
                finally:
                    server.kill()
                    server.wait()
    finally:
        pool.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aio_handlers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: the harness's choice)")
    parser.add_argument("--levels", default="16,64", help="calls in flight")
    parser.add_argument("--open-rates", default="", help="open-loop offered rates (calls/s), after the levels")
    parser.add_argument("--servers", default="sync,aio",
                        help="servers to compare, in turn: sync, aio, proc (sync with the writer in its own "
                             "process, as the ledger runs it)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per level")
    parser.add_argument("--reps", type=int, default=2, help="rounds of sync then aio")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], PORT, args.serve[1])
        return 0
    levels = [int(level) for level in args.levels.split(",") if level]
    open_rates = [float(rate) for rate in args.open_rates.split(",") if rate]
    assert all(1 <= level <= 256 for level in levels) and all(1 <= rate <= 20_000 for rate in open_rates)
    assert 0.5 <= args.seconds <= 120 and 1 <= args.reps <= 10
    postgres = PostgresServer(args.database_url)
    try:
        _, url = postgres.create_database("aio_handlers")
        rows = measure(url, levels, args.seconds, args.reps, open_rates, args.servers.split(","))
    finally:
        postgres.drop_databases()
        postgres.stop()
    print("| server | in flight | calls/s | p50 ms | p99 ms | p99.9 ms | server µs per call | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['server']} | {r['concurrency']} | {r['calls_per_s']:,.0f} | {r['p50_ms']} | {r['p99_ms']} "
              f"| {r['p999_ms']} "
              f"| {r['server_us_per_call']:.0f} | {r['errors']} |")
    return 0 if all(r["errors"] == 0 and r["calls_per_s"] > 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
