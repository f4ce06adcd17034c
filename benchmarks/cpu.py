"""CPU accounting per side: the ledger server, PostgreSQL, the load generator, and everything else.

PostgreSQL's share is summed over its processes (/proc via psutil): the backends connected to the
benchmark's own databases plus the shared background processes (WAL writer, checkpointer, ...).
Backends of other databases on the same server (other people's tests on a shared machine) are
counted apart, as noise. Processes are sampled every SAMPLE_INTERVAL_S, so a backend that lives
and dies between two samples is missed; the benchmark's backends live for a whole phase.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil
import psycopg

SAMPLE_INTERVAL_S = 0.25


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds over one window. postgres_* are None when PostgreSQL is not on this machine."""

    wall_s: float
    server_s: float | None
    postgres_s: float | None
    postgres_other_databases_s: float | None
    machine_busy_s: float
    machine_cores: int

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _cpu(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return float(times.user + times.system)


def tree_cpu_s(proc: psutil.Process) -> float | None:
    """CPU seconds of a server and its children (`--processes N` runs the replicas as children,
    started before the window and alive through it); None when the process is gone."""
    own = _cpu(proc)
    if own is None:
        return None
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        children = []
    return own + sum(_cpu(child) or 0.0 for child in children)


def _busy(times: Any) -> float:
    steal = getattr(times, "steal", 0.0)
    return float(times.user + times.nice + times.system + times.irq + times.softirq + steal)


class PostgresProcesses:
    """Finds the postmaster of the server at `admin_url` and classifies its children."""

    def __init__(self, admin_url: str) -> None:
        self._conn: psycopg.Connection[Any] = psycopg.connect(admin_url, autocommit=True)
        backend_pid = self._conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        self.postmaster: psutil.Process | None = None
        try:
            backend = psutil.Process(backend_pid)
            parent = backend.parent()
            if parent is not None and "postgres" in backend.name() + parent.name():
                self.postmaster = parent
        except psutil.Error:
            self.postmaster = None  # a remote server: its CPU cannot be seen from here

    @property
    def local(self) -> bool:
        return self.postmaster is not None

    def snapshot(self, databases: set[str]) -> dict[int, tuple[bool, float]]:
        """pid -> (is ours, CPU seconds so far), for the postmaster and all its children."""
        if self.postmaster is None:
            return {}
        owners = {
            pid: (datname, backend_type)
            for pid, datname, backend_type in self._conn.execute(
                "SELECT pid, datname, backend_type FROM pg_stat_activity"
            ).fetchall()
        }
        try:
            procs = [self.postmaster, *self.postmaster.children()]
        except psutil.Error:
            return {}
        result: dict[int, tuple[bool, float]] = {}
        for proc in procs:
            seconds = _cpu(proc)
            if seconds is None:
                continue
            datname, backend_type = owners.get(proc.pid, (None, None))
            ours = datname in databases or (datname is None and backend_type != "client backend")
            result[proc.pid] = (ours, seconds)
        return result

    def close(self) -> None:
        self._conn.close()


class CpuMeter:
    """Measures one window: start() ... stop() -> CpuUsage. Samples in a thread in between."""

    def __init__(self, postgres: PostgresProcesses, databases: Iterable[str]) -> None:
        self._pg = postgres
        self._databases = set(databases)
        self._server: psutil.Process | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: dict[int, tuple[bool, float]] = {}
        self._last: dict[int, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def start(self, server_pid: int | None) -> None:
        assert self._thread is None, "one window at a time"
        self._server = psutil.Process(server_pid) if server_pid else None
        self._server_begin = tree_cpu_s(self._server) if self._server else None
        self._first = self._pg.snapshot(self._databases)
        self._last = dict(self._first)
        self._machine_begin = psutil.cpu_times()
        self._wall_begin = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="cpu-meter", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            seen = self._pg.snapshot(self._databases)
            with self._lock:
                self._last.update(seen)

    def stop(self) -> CpuUsage:
        assert self._thread is not None
        wall = time.monotonic() - self._wall_begin
        machine = psutil.cpu_times()
        server_end = tree_cpu_s(self._server) if self._server else None
        self._stop.set()
        self._thread.join()
        self._thread = None
        with self._lock:
            self._last.update(self._pg.snapshot(self._databases))
            ours = other = 0.0
            for pid, (is_ours, seconds) in self._last.items():
                used = seconds - self._first.get(pid, (is_ours, 0.0))[1]
                if is_ours:
                    ours += used
                else:
                    other += used
        server = None
        if server_end is not None and self._server_begin is not None:
            server = server_end - self._server_begin
        return CpuUsage(
            wall_s=wall,
            server_s=server,
            postgres_s=ours if self._pg.local else None,
            postgres_other_databases_s=other if self._pg.local else None,
            machine_busy_s=_busy(machine) - _busy(self._machine_begin),
            machine_cores=psutil.cpu_count() or 1,
        )
