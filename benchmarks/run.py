"""Benchmark the ledger against its baselines on this machine, in one invocation.

    python -m benchmarks.run                    # the full run (~6-8 minutes on 2 cores)
    python -m benchmarks.run --smoke            # seconds: tiny counts, checks the harness works
    python -m benchmarks.run --soak             # memory: RSS of the server over 5+ minutes

Starts (or uses) PostgreSQL, the ledger server and the echo server as subprocesses, loads them
from separate processes, and writes results.json, results.md and PNG plots under --out.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import functools
import json
import logging
import os
import pathlib
import platform
import random
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psutil
import psycopg
from tqdm import tqdm

from benchmarks import auth, naive_ledger, pgbench, report
from benchmarks.cpu import CpuMeter, PostgresProcesses
from benchmarks.databases import PostgresServer
from benchmarks.load import GRPC_OPTIONS, LoadPool, PhaseSpec, WorkerReport
from benchmarks.profiling import NativeRecorder, Recorder, py_spy
from benchmarks.results import latency_curve_ms, phase_figures, server_metrics_delta, summarize
from benchmarks.services import Service, echo_server, free_port_block, ledger_server, scrape
from benchmarks.workloads import WORKLOADS, Accounts, Batch
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc

log = logging.getLogger("benchmarks")
DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results"
Step = tuple[str, Callable[[], dict[str, Any] | None]]
START_DELAY_S = 0.3  # lets every worker receive the phase before its warm-up begins
SETUP_THREADS = 32
SEED_BATCHES = 5


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    assert values and all(v > 0 for v in values), text
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", help="a PostgreSQL server to create the benchmark databases on "
                   "(default: the local one at 127.0.0.1:5432, else an embedded pgserver)")
    p.add_argument("--redis-url", default="auto",
                   help="Redis for the ledger's rate limiter, as operators run it; 'auto' (default): the "
                        "local one at 127.0.0.1:6379 when it answers, 'none': without Redis")
    p.add_argument("--cards", action="store_true",
                   help="only the card authorization latency runs (gateway + ledger, open loop per rate)")
    p.add_argument("--card-rates", default="100,200,300,400,500", help="authorizations per second, per run")
    p.add_argument("--card-seconds", type=float, default=10.0)
    p.add_argument("--card-logs", help="--cards: a folder for the ledger's and the gateway's logs (slow batches, "
                   "timeouts), to explain a slow second of the report")
    p.add_argument("--gateway-processes", type=int, default=0,
                   help="--cards: card gateway processes (ledger-card-gateway serve --processes; default 1: "
                        "with its round trips coalesced, one process and one ledger process measured best)")
    p.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="where results go")
    p.add_argument("--duration", type=float, default=6.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=1.0, help="discarded seconds before each phase")
    p.add_argument("--levels", type=_ints, default=[1, 4, 16, 64],
                   help="closed-loop concurrency levels for uniform, hot and the echo server")
    p.add_argument("--card-levels", type=_ints, default=[16, 64])
    p.add_argument("--batch-levels", type=_ints, default=[1, 2, 4], help="CreateTransfers calls in flight")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--naive-levels", type=_ints, default=[8, 20],
                   help="one PostgreSQL connection per client: mind max_connections on a shared server")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--hot-accounts", type=int, default=10)
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--load-processes", type=int, default=2)
    p.add_argument("--server-processes", type=int, default=0,
                   help="ledger server processes sharing its port (ledger-server --processes); the echo "
                        "servers run as many (default: one per core, as an operator would run it; 1 with --cards)")
    p.add_argument("--connections", type=int, default=0,
                   help="gRPC connections per load process, for every gRPC target alike (default: 1, "
                        "or 8 with several server processes, so the kernel spreads them)")
    p.add_argument("--closed-loop-client", choices=("aio", "threads"), default="aio",
                   help="closed-loop gRPC calls as coroutines over grpc.aio (default: less load-generator CPU "
                        "per call) or one thread per call in flight with sync stubs (as before 2026-11-25 17:00)")
    p.add_argument("--open-rate", type=float, default=0.0,
                   help="open-loop offered calls/s (default: half the uniform peak of this run)")
    p.add_argument("--open-seconds", type=float, default=10.0)
    p.add_argument("--pgbench-clients", type=int, default=8)
    p.add_argument("--pgbench-seconds", type=int, default=10)
    p.add_argument("--pgbench-scale", type=int, default=8)
    p.add_argument("--profile-seconds", type=int, default=8, help="py-spy per profiled phase; 0 skips")
    p.add_argument("--no-echo-aio", action="store_true", help="skip the grpc.aio echo server series")
    p.add_argument("--no-extra-nosync", action="store_true",
                   help="skip the labelled non-durable extra (uniform with synchronous_commit=off)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--keep-databases", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny counts and durations: a harness check")
    p.add_argument("--soak", action="store_true",
                   help="only the memory soak: uniform load for --soak-seconds")
    p.add_argument("--soak-seconds", type=float, default=330.0)
    p.add_argument("--soak-concurrency", type=int, default=16)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup = min(args.duration, 0.5), min(args.warmup, 0.1)
        args.levels, args.card_levels, args.batch_levels, args.naive_levels = [2], [2], [1], [2]
        args.batch_size, args.accounts, args.hot_accounts, args.merchants = 20, 40, 3, 3
        args.open_seconds, args.pgbench_seconds, args.pgbench_scale = 0.5, 1, 1
        args.pgbench_clients, args.profile_seconds = 2, 0
        args.soak_seconds = min(args.soak_seconds, 2.0)
    args.workloads = [w for w in args.workloads.split(",") if w]
    if args.server_processes <= 0:  # --cards: one ledger process (see --gateway-processes)
        args.server_processes = 1 if args.cards else os.cpu_count() or 1
    if args.gateway_processes <= 0:
        args.gateway_processes = 1
    if args.connections <= 0:
        args.connections = 1 if args.server_processes == 1 else 8
    for workload in args.workloads:
        if workload not in WORKLOADS:
            p.error(f"unknown workload {workload}")
    return args


class Bench:
    """One invocation: owns the databases, the services and the load processes it started."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: pathlib.Path = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.phases: list[dict[str, Any]] = []
        self.cleanups: list[Callable[[], None]] = []
        self.run_id = uuid.uuid4().hex[:6]
        self.start_delay_s = START_DELAY_S / 3 if args.smoke else START_DELAY_S
        self.profiles: dict[str, Any] = {}
        self.pgbench_result: dict[str, Any] | None = None
        self.echo: Service | None = None
        self.echo_aio: Service | None = None
        self.naive_ready = False

    # -- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception:  # keep cleaning up
                log.exception("cleanup failed")

    def setup(self) -> None:
        args = self.args
        self.pg = PostgresServer(args.database_url)
        self.cleanups.append(self.pg.stop)
        self.settings = self.pg.settings()
        if self.settings["fsync"] != "on" or self.settings["synchronous_commit"] != "on":
            raise SystemExit(f"durability is off on this PostgreSQL ({self.settings}); the reported "
                             "figures must be durable: turn fsync and synchronous_commit on")
        if not args.keep_databases:
            self.cleanups.append(self.pg.drop_databases)
        self.ledger_db, self.ledger_url = self.pg.create_database("ledger")
        self.naive_db, self.naive_url = self.pg.create_database("naive")
        self.pgbench_db, self.pgbench_url = self.pg.create_database("pgbench")
        self.pg_procs = PostgresProcesses(self.pg.admin_url)
        self.cleanups.append(self.pg_procs.close)
        self.meter = CpuMeter(self.pg_procs, {self.ledger_db, self.naive_db, self.pgbench_db})
        self.pool = LoadPool(args.load_processes)  # spawning overlaps the servers' start
        self.cleanups.append(self.pool.close)
        self.metrics_port = free_port_block(args.server_processes)
        self.redis_url = _redis_url(args.redis_url)
        ledger = ledger_server(self.ledger_url, self.metrics_port, self.tmp / "ledger-server.log",
                               redis_url=self.redis_url, processes=args.server_processes)
        self.ledger = ledger.launch()
        self.cleanups.append(self.ledger.stop)
        if not args.soak:
            self.echo = echo_server(self.tmp / "echo-server.log", processes=args.server_processes).launch()
            self.cleanups.append(self.echo.stop)
            if not args.no_echo_aio:
                self.echo_aio = echo_server(self.tmp / "echo-aio-server.log", aio=True,
                                            processes=args.server_processes).launch()
                self.cleanups.append(self.echo_aio.stop)
                self.echo_aio.wait_ready()
            self.echo.wait_ready()
        self.ledger.wait_ready()

    def measure(self, name: str, series: str, service: Service | None, spec: PhaseSpec,
                mode: str = "closed") -> dict[str, Any]:
        """Run one phase on the load processes; meter CPU and server counters over its window."""
        begin, end = spec.window
        self.pool.start(spec)
        time.sleep(max(0.0, begin - time.monotonic()))
        self.meter.start(service.pid if service else None)
        metrics_ports = service.metrics_ports if service is not None else []
        metrics_before = scrape(metrics_ports) if metrics_ports else None
        time.sleep(max(0.0, end - time.monotonic()))
        cpu = self.meter.stop()
        metrics_after = scrape(metrics_ports) if metrics_ports else None
        report_: WorkerReport = self.pool.collect(spec)
        figures = phase_figures(report_, spec.duration_s)
        if mode == "open":
            figures["latency_curve_ms"] = latency_curve_ms(report_.latencies_us)
        phase: dict[str, Any] = {
            "name": name, "series": series, "workload": spec.workload, "mode": mode,
            "target": service.name if service else spec.target_kind, "concurrency": spec.concurrency,
            "offered_per_s": spec.open_rate or None, "duration_s": spec.duration_s, **figures,
            "cpu": cpu.as_dict() | {"load_generator_s": round(report_.cpu_s, 3)},
        }
        if metrics_before is not None and metrics_after is not None:
            phase["server_metrics"] = server_metrics_delta(metrics_before, metrics_after, cpu.wall_s)
        if service is not None:
            phase["server_rss_mb"] = round(service.rss_bytes() / 2**20, 1)
        if cpu.server_s is not None and report_.transfers:
            phase["server_cpu_us_per_transfer"] = round(1e6 * cpu.server_s / report_.transfers, 1)
        if cpu.postgres_s is not None and report_.transfers:
            phase["postgres_cpu_us_per_transfer"] = round(1e6 * cpu.postgres_s / report_.transfers, 1)
        self.phases.append(phase)
        return phase

    def spec(self, name: str, kind: str, target: str, workload: str, concurrency: int,
             duration: float | None = None, open_rate: float = 0.0) -> PhaseSpec:
        args = self.args
        return PhaseSpec(
            name=f"{self.run_id}-{name}", target_kind=kind, target=target, workload=workload,
            concurrency=concurrency, start_at=time.monotonic() + self.start_delay_s, warmup_s=args.warmup,
            duration_s=duration or args.duration, open_rate=open_rate, accounts=self.accounts,
            naive_accounts=args.accounts, naive_hot=args.hot_accounts if workload == "hot" else 0,
            batch_size=args.batch_size, seed=len(self.phases) + 1, connections=args.connections,
            aio_client=args.closed_loop_client == "aio",
        )

    # -- setup of the data ------------------------------------------------------------------------

    def create_accounts(self) -> Accounts:
        args = self.args
        asset = "B" + self.run_id.upper()
        with auth.channel(self.ledger.target) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            stub.CreateAsset(pb.CreateAssetRequest(request_id=f"{self.run_id}-asset", code=asset, scale=2))

            def create(i: int) -> str:
                account = stub.CreateAccount(pb.CreateAccountRequest(
                    request_id=f"{self.run_id}-account-{i}", asset=asset), timeout=60)
                return str(account.id)

            total = args.accounts + args.hot_accounts + args.merchants
            with concurrent.futures.ThreadPoolExecutor(SETUP_THREADS) as pool:
                ids = list(pool.map(create, range(total)))
        spread = ids[: args.accounts]
        hot = ids[args.accounts: args.accounts + args.hot_accounts]
        accounts = Accounts(asset, spread, hot, ids[args.accounts + args.hot_accounts:])
        self.seed_transfers(accounts)
        return accounts

    def seed_transfers(self, accounts: Accounts) -> None:
        """Some history, then ANALYZE: statistics of an empty transfers table make PostgreSQL cache
        sequential-scan plans for the foreign-key checks of entries, which then grow with the table
        until autovacuum analyzes it again (see README.md, "Where the time goes")."""
        session = Batch(accounts, random.Random(0), f"{self.run_id}-seed", min(1000, self.args.batch_size))
        with auth.channel(self.ledger.target, GRPC_OPTIONS) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            for _ in range(SEED_BATCHES):
                stub.CreateTransfers(session.next_call().request, timeout=60)
        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            conn.execute("ANALYZE")

    # -- the phases -------------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        """Baselines first (pgbench, then the echo server), the workloads, the naive ledger, the
        open loop at half the uniform peak just measured, and the profiles last."""
        args = self.args
        steps: list[Step] = [("pgbench", self.run_pgbench)]
        steps += [(f"echo c={c}", functools.partial(self.closed, "echo", "uniform", c)) for c in args.levels]
        if not args.no_echo_aio:
            steps += [(f"echo-aio c={c}", functools.partial(self.closed, "echo-aio", "uniform", c))
                      for c in args.levels]
        for workload in args.workloads:
            levels = {"card": args.card_levels, "batch": args.batch_levels}.get(workload, args.levels)
            steps += [(f"{workload} c={c}", functools.partial(self.closed, workload, workload, c))
                      for c in levels]
        for workload in ("uniform", "hot"):
            steps += [(f"naive-{workload} c={c}", functools.partial(self.naive, workload, c))
                      for c in args.naive_levels]
        if "uniform" in args.workloads:
            steps.append(("open loop", self.open_loop))
            if not args.no_extra_nosync:
                steps.append(("extra: no sync commit", self.not_durable_extra))
        if args.profile_seconds > 0:
            steps += [(f"profile {w}", functools.partial(self.profile, w)) for w in ("uniform", "batch")
                      if w in args.workloads]
        return steps

    def run_pgbench(self) -> dict[str, Any]:
        args = self.args
        binary = self.pg.pgbench()
        pgbench.initialize(binary, self.pgbench_url, args.pgbench_scale)
        self.meter.start(None)
        result = pgbench.run(binary, self.pgbench_url, args.pgbench_clients, args.pgbench_seconds)
        cpu = self.meter.stop()
        self.pgbench_result = {
            **result.__dict__, "binary": binary, "scale": args.pgbench_scale,
            "cpu": cpu.as_dict() | {"load_generator_s": round(result.client_cpu_s, 3)},
        }
        return {"transfers_per_s": result.tps, "latency_ms": {"p99": None}}

    def closed(self, series: str, workload: str, concurrency: int) -> dict[str, Any]:
        service = self.ledger
        if series == "echo":
            assert self.echo is not None
            service = self.echo
        elif series == "echo-aio":
            assert self.echo_aio is not None
            service = self.echo_aio
        spec = self.spec(f"{series}-c{concurrency}", "grpc", service.target, workload, concurrency)
        return self.measure(f"{series} c={concurrency}", series, service, spec)

    def naive(self, workload: str, concurrency: int) -> dict[str, Any]:
        if not self.naive_ready:
            naive_ledger.prepare(self.naive_url, self.args.accounts)
            self.naive_ready = True
        spec = self.spec(f"naive-{workload}-c{concurrency}", "naive", self.naive_url, workload, concurrency)
        return self.measure(f"naive-{workload} c={concurrency}", f"naive-{workload}", None, spec)

    def open_loop(self) -> dict[str, Any] | None:
        rate = self.args.open_rate
        if rate <= 0:
            peaks = [p["calls_per_s"] for p in self.phases
                     if p["series"] == "uniform" and p["mode"] == "closed"]
            if not peaks or max(peaks) <= 0:
                return None
            rate = max(peaks) / 2
        spec = self.spec("open-uniform", "grpc", self.ledger.target, "uniform", 0,
                         duration=self.args.open_seconds, open_rate=rate)
        return self.measure(f"uniform open loop {rate:.0f}/s", "uniform", self.ledger, spec, mode="open")

    def not_durable_extra(self) -> dict[str, Any]:
        """Labelled extra, never a reported figure: uniform at its best level on a second ledger
        whose connections run with synchronous_commit=off. If it is not much faster, commit
        latency (the WAL flush) is not what limits the ledger."""
        candidates = [p for p in self.phases if p["series"] == "uniform" and p["mode"] == "closed"]
        level = max(candidates, key=lambda p: p["transfers_per_s"])["concurrency"] if candidates else 16
        port = free_port_block(self.args.server_processes)
        extra = ledger_server(self.ledger_url, port, self.tmp / "ledger-nosync.log", durable=False,
                              redis_url=self.redis_url, processes=self.args.server_processes).start()
        try:
            spec = self.spec(f"nosync-c{level}", "grpc", extra.target, "uniform", level)
            return self.measure(f"EXTRA, NOT DURABLE: uniform c={level}, synchronous_commit=off",
                                "extra-not-durable", extra, spec)
        finally:
            extra.stop()

    def profile(self, workload: str) -> dict[str, Any] | None:
        """py-spy on the server while the workload runs at its best concurrency of this run."""
        if py_spy() is None:
            self.profiles[workload] = {"skipped": "py-spy is not installed: pip install -e '.[bench]'"}
            return None
        candidates = [p for p in self.phases if p["series"] == workload and p["mode"] == "closed"]
        level = max(candidates, key=lambda p: p["transfers_per_s"])["concurrency"] if candidates else 16
        seconds = self.args.profile_seconds
        spec = self.spec(f"profile-{workload}", "grpc", self.ledger.target, workload, level,
                         duration=seconds + 1)
        pid = self.ledger.serving_pid()
        recorder = Recorder(pid, seconds, self.out / f"profile-{workload}.txt")
        native = NativeRecorder(pid, seconds, self.tmp / f"perf-{workload}.data")
        self.pool.start(spec)
        time.sleep(max(0.0, spec.window[0] - time.monotonic()))
        recorder.start()
        native.start()
        report_ = self.pool.collect(spec)
        profile = recorder.finish()
        native.finish(profile)
        self.profiles[workload] = profile.as_dict() | {
            "concurrency": level, "server_processes": self.args.server_processes,
            "transfers_per_s_while_profiled": round(report_.transfers / spec.duration_s, 1),
            "raw_path": str(pathlib.Path(profile.raw_path).relative_to(self.out)),
        }
        return {"transfers_per_s": report_.transfers / spec.duration_s, "latency_ms": {"p99": None}}

    # -- the whole run ----------------------------------------------------------------------------

    def run(self, argv: Sequence[str]) -> dict[str, Any]:
        started = dt.datetime.now(dt.UTC)
        wall = time.monotonic()
        self.setup()
        self.accounts = self.create_accounts()
        steps = self.plan()
        bar = tqdm(steps, desc="benchmark", unit="phase", disable=self.args.quiet, file=sys.stderr)
        for title, step in bar:
            bar.set_description(title)
            outcome = step()
            if outcome:
                bar.set_postfix_str(f"{outcome['transfers_per_s']:.0f} transfers/s")
        bar.close()
        pgbench_tps = self.pgbench_result["tps"] if self.pgbench_result else None
        return {
            "meta": self.meta(argv, started, time.monotonic() - wall),
            "checks": self.check_books(),
            "summary": summarize(self.phases, pgbench_tps),
            "pgbench": self.pgbench_result,
            "phases": self.phases,
            "profiles": self.profiles,
        }

    def check_books(self) -> dict[str, Any]:
        """After the load: debits equal credits, and every acknowledged transfer is stored."""
        with psycopg.connect(self.ledger_url) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(debits_posted) - sum(credits_posted), 0),"
                " coalesce(sum(debits_pending) - sum(credits_pending), 0),"
                " (SELECT count(*) FROM transfers) FROM accounts"
            ).fetchone()
        assert row is not None
        posted, pending, stored = int(row[0]), int(row[1]), int(row[2])
        acknowledged = sum(p["transfers"] for p in self.phases if p["target"] == "ledger")
        naive_sum = naive_ledger.total_balance(self.naive_url)[0] if self.naive_ready else 0
        return {
            "ledger_posted_debits_minus_credits": posted, "ledger_pending_debits_minus_credits": pending,
            "ledger_transfers_stored": stored, "ledger_transfers_acknowledged_in_windows": acknowledged,
            "naive_balance_sum": naive_sum,
            "ok": posted == 0 and pending == 0 and stored >= acknowledged and naive_sum == 0,
        }

    def meta(self, argv: Sequence[str], started: dt.datetime, wall_s: float) -> dict[str, Any]:
        args = self.args
        return {
            "started": started.isoformat(timespec="seconds"),
            "wall_s": round(wall_s, 1),
            "command": "python -m benchmarks.run " + shlex.join(argv),
            "git_commit": _git_commit(),
            "machine": {"cores": psutil.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(),
                        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
            "postgres": {"origin": self.pg.origin, **self.settings, "cpu_visible": self.pg_procs.local},
            "settings": {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()},
            "accounts": {"spread": args.accounts, "hot": args.hot_accounts, "merchants": args.merchants},
            "ledger_redis": self.redis_url,
        }


def run_soak(bench: Bench) -> dict[str, Any]:
    """Uniform load for --soak-seconds; the server's RSS sampled every few seconds."""
    args = bench.args
    bench.setup()
    bench.accounts = bench.create_accounts()
    spec = bench.spec("soak", "grpc", bench.ledger.target, "uniform", args.soak_concurrency,
                      duration=args.soak_seconds)
    begin, end = spec.window
    samples: list[tuple[float, float]] = []
    interval = 1.0 if args.soak_seconds < 60 else 5.0
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        running = executor.submit(bench.pool.run, spec)
        bar = tqdm(total=int(end - time.monotonic()), desc="soak", unit="s", disable=args.quiet,
                   file=sys.stderr)
        while time.monotonic() < end:
            time.sleep(interval)
            now = time.monotonic()
            if now >= begin:
                samples.append((round(now - begin, 1), round(bench.ledger.rss_bytes() / 2**20, 2)))
            bar.update(int(interval))
        bar.close()
        report_ = running.result()
    figures = phase_figures(report_, spec.duration_s)

    def rss_at(second: float) -> float | None:
        eligible = [rss for t, rss in samples if t >= second]
        return eligible[0] if eligible else None

    first, last = rss_at(60.0), rss_at(300.0)
    growth = None if first is None or last is None else round((last - first) / first, 4)
    return {
        "meta": {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                 "postgres": bench.pg.settings(), "concurrency": args.soak_concurrency,
                 "seconds": args.soak_seconds},
        "throughput": {k: figures[k] for k in ("calls_per_s", "transfers_per_s", "errors", "latency_ms")},
        "rss_mb": samples,
        "rss_minute_1_mb": first, "rss_minute_5_mb": last, "growth": growth,
        "flat": None if growth is None else abs(growth) <= 0.10,
    }


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=pathlib.Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _redis_url(choice: str) -> str | None:
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=0.5, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return None
    return "redis://127.0.0.1:6379/0"


def run_card_latency(args: argparse.Namespace) -> int:
    from benchmarks import cards

    rates = [float(r) for r in args.card_rates.split(",")]
    seconds, warmup = (1.0, 0.5) if args.smoke else (args.card_seconds, 3.0)
    if args.smoke:
        rates = [20.0]
    admin_url = args.database_url or "postgresql://postgres@127.0.0.1:5432/postgres"
    result = cards.run_cards(admin_url, _redis_url(args.redis_url), rates, seconds, warmup, args.server_processes,
                             args.gateway_processes, args.card_logs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cards.json").write_text(json.dumps(result, indent=1) + "\n")
    text = cards.markdown(result)
    (args.out / "cards.md").write_text(text)
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    auth.run_key()  # before any load process is spawned: they inherit it
    if args.cards:
        return run_card_latency(args)
    bench = Bench(args)
    try:
        if args.soak:
            result = run_soak(bench)
            (args.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
            (args.out / "soak.md").write_text(report.soak_markdown(result))
            if not args.no_plots:
                report.plot_soak(result, args.out / "soak_rss.png")
            print(report.soak_markdown(result))
            return 0
        result = bench.run(argv)
    finally:
        bench.close()
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    markdown = report.markdown(result, plots=not args.no_plots)
    (args.out / "results.md").write_text(markdown)
    if not args.no_plots:
        report.plot_throughput(result, args.out / "throughput.png")
        report.plot_latency(result, args.out / "latency.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

