"""The durable-transaction baseline: pgbench's TPC-B-like script on the same PostgreSQL.

One pgbench transaction is five statements and one durable COMMIT: the cost of one durable
transaction per transfer on this machine, the ceiling of any ledger that commits each transfer
on its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_avg_ms: float
    clients: int
    seconds: int
    client_cpu_s: float  # pgbench's own CPU: the load generator of this baseline


def initialize(pgbench: str, database_url: str, scale: int) -> None:
    subprocess.run(
        [pgbench, "-i", "-q", "-s", str(scale), database_url], check=True, capture_output=True, timeout=300
    )


def run(pgbench: str, database_url: str, clients: int, seconds: int) -> PgbenchResult:
    threads = max(1, min(clients, os.cpu_count() or 1))
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [pgbench, "-c", str(clients), "-j", str(threads), "-T", str(seconds), database_url],
            stdout=stdout, stderr=stderr,
        )
        # wait4 gives the child's own rusage: pgbench's CPU, not ours.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read().decode(), stderr.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {err[-2000:]}")
    tps, latency = TPS.search(out), LATENCY.search(out)
    if tps is None or latency is None:
        raise RuntimeError(f"cannot read pgbench output:\n{out}")
    return PgbenchResult(
        tps=float(tps.group(1)), latency_avg_ms=float(latency.group(1)), clients=clients, seconds=seconds,
        client_cpu_s=usage.ru_utime + usage.ru_stime,
    )
