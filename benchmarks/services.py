"""The processes under test: the ledger server and the echo server, each a real subprocess.

The ledger is started exactly as an operator would (`python -m ledger_server.main` with
LEDGER_DATABASE_URL / LEDGER_LISTEN), plus a Prometheus endpoint the harness scrapes for batch
sizes and retries.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.auth import run_key

ROOT = pathlib.Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_block(count: int, avoid: Collection[int] = ()) -> int:
    """The first of `count` consecutive free ports, none in `avoid` (the metrics ports of a
    multi-process server are consecutive; free ports picked one by one often are too)."""
    for _ in range(100):
        base = free_port()
        block = range(base, base + count)
        if any(port in avoid for port in block) or block.stop > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in block:
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def server_processes(parent_pid: int) -> list[Any]:
    """The server processes a supervisor (ledger_server/process_supervisor.py) started, oldest
    first: its spawned children, not multiprocessing's resource tracker beside them."""
    import psutil

    children = [p for p in psutil.Process(parent_pid).children() if "spawn_main" in " ".join(p.cmdline())]
    return sorted(children, key=lambda p: p.create_time())


@dataclass
class Service:
    """A child process serving gRPC on `target`."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log_path: pathlib.Path | None = None
    target: str = ""
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int | None = None  # the ledger's Prometheus endpoint (the first process's)
    processes: int = 1  # server processes; process i serves metrics on metrics_port + i

    def start(self) -> Service:
        return self.launch().wait_ready()

    def launch(self) -> Service:
        """Start the process; wait_ready() blocks until it serves (several can start at once)."""
        port = free_port()
        while self.metrics_port is not None and port in range(self.metrics_port, self.metrics_port + self.processes):
            port = free_port()
        self.target = f"127.0.0.1:{port}"
        env = {**os.environ, **self.env, "LEDGER_LISTEN": self.target}
        argv = [a.replace("{listen}", self.target) for a in self.argv]
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=log)
        return self

    def wait_ready(self) -> Service:
        """Until it serves calls and every process serves its metrics: with several processes the
        port answers as soon as the first is up, and a phase scraping at once found the others'
        metrics endpoints not listening yet."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(self.target) as channel:
            while True:
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    break
                except grpc.FutureTimeoutError:
                    self._check_alive(deadline)
        for port in self.metrics_ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    self._check_alive(deadline)
                    time.sleep(0.05)
        return self

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is not None or time.monotonic() > deadline:
            tail = self.log_path.read_text()[-3000:] if self.log_path else ""
            raise RuntimeError(f"{self.name} did not start:\n{tail}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def serving_pid(self) -> int:
        """A process that serves calls: the process itself, or with several the first child (they
        are alike: profiling one shows where each spends its time)."""
        if self.processes == 1:
            return self.pid
        children = server_processes(self.pid)
        assert children, f"{self.name}: no server processes"
        return int(children[0].pid)

    @property
    def metrics_ports(self) -> list[int]:
        return [] if self.metrics_port is None else [self.metrics_port + i for i in range(self.processes)]

    def rss_bytes(self) -> int:
        """The process and its children (the server processes of `ledger-server --processes N`)."""
        import psutil

        root = psutil.Process(self.pid)
        return sum(int(p.memory_info().rss) for p in [root, *root.children(recursive=True)])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def ledger_server(
    database_url: str, metrics_port: int, log_path: pathlib.Path | None, durable: bool = True,
    redis_url: str | None = None, processes: int = 1,
) -> Service:
    """The ledger as operators run it. durable=False sets synchronous_commit=off on every
    connection it opens (libpq's PGOPTIONS): only for the labelled, non-durable extra."""
    env = {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "LEDGER_LOG_LEVEL": "WARNING",
        "LEDGER_BOOTSTRAP_ADMIN_KEY": run_key(),
        # The harness is one caller: the per-caller rate limit must not be what it measures.
        "LEDGER_RATE_LIMIT": "1000000000",
        "LEDGER_RATE_LIMIT_BURST": "1000000000",
    }
    if redis_url:  # rate limits in Redis, as operators run it (the limit is lifted, the calls are not)
        env["LEDGER_REDIS_URL"] = redis_url
    if processes > 1:
        env["LEDGER_PROCESSES"] = str(processes)
    if not durable:
        env["PGOPTIONS"] = (os.environ.get("PGOPTIONS", "") + " -c synchronous_commit=off").strip()
    name = "ledger" if durable else "ledger (synchronous_commit=off)"
    argv = [sys.executable, "-m", "ledger_server.main"]
    return Service(name, argv, env, log_path, metrics_port=metrics_port, processes=processes)


def echo_server(log_path: pathlib.Path | None, aio: bool = False, processes: int = 1) -> Service:
    argv = [sys.executable, "-m", "benchmarks.echo_server", "--listen", "{listen}", "--processes", str(processes)]
    argv += ["--aio"] if aio else []
    return Service("echo-aio" if aio else "echo", argv, {}, log_path, processes=processes)


def scrape(metrics_ports: list[int]) -> dict[str, float]:
    """The ledger's counters that explain throughput and latency: batches, jobs per batch, the
    batches that took the warm path, retries, splits, and the time calls spent inside the handlers;
    summed over the server's processes."""
    text = ""
    for port in metrics_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text += response.read().decode()
    wanted = {
        "ledger_batch_jobs_sum": "batch_jobs_sum", "ledger_batch_jobs_count": "batches",
        "ledger_batch_seconds_sum": "batch_seconds_sum", "ledger_batch_splits_total": "splits",
        "ledger_lock_wait_seconds_sum": "lock_wait_seconds_sum",
    }
    values: dict[str, float] = {v: 0.0 for v in wanted.values()}
    values.update(retries=0.0, rpc_seconds_sum=0.0, rpcs=0.0, rpcs_within_10ms=0.0, warm_batches=0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                values[wanted[sample.name]] += sample.value
            elif sample.name == "ledger_batch_path_total" and sample.labels.get("path") == "warm":
                values["warm_batches"] += sample.value
            elif sample.name == "ledger_batch_retries_total":
                values["retries"] += sample.value
            elif sample.name == "ledger_rpc_seconds_sum":  # every method and code: a phase runs one kind
                values["rpc_seconds_sum"] += sample.value
            elif sample.name == "ledger_rpc_seconds_count":
                values["rpcs"] += sample.value
            elif sample.name == "ledger_rpc_seconds_bucket" and sample.labels.get("le") == "0.01":
                values["rpcs_within_10ms"] += sample.value
    return values
