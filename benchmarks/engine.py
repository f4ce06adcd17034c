"""The posting engine alone: CPU per batch, Python side and PostgreSQL side, without gRPC.

    python -m benchmarks.engine                      # 400 batches of 1, 120 of 25, 6 of 1,000
    python -m benchmarks.engine --sizes 1,25 --reps 2
    python -m benchmarks.engine --paths both         # the warm path against the read path, alternated

One PostingEngine on a fresh database (created and dropped on the harness's PostgreSQL), 2,000
accounts, 5,000 seed transfers and ANALYZE; then uniform CreateTransfer batches of each size.
Python CPU is this process's (getrusage), PostgreSQL CPU the engine backend's (/proc, so a local
server only). Repeatable enough to compare two versions of the engine on a shared machine when
they are alternated; this is how the "Fixes made" table of benchmarks/README.md was measured.
`--paths both` alternates the engine's warm path (accounts from its memory, one round trip) with its
read path in this one process, three blocks each per size, and reports each path's median block.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
import uuid
from typing import Any

import psycopg

from benchmarks.databases import PostgresServer
from ledger.v1 import ledger_pb2
from ledger_server import commands as c
from ledger_server.gc_pauses import freeze_startup_heap
from ledger_server.metrics import Metrics
from ledger_server.migrate import migrate
from ledger_server.posting import PostingEngine

ACCOUNTS = 2_000
REPS = {1: 400, 25: 120, 1000: 6}


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:  # not a local server
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, sizes: list[int], rep_scale: float, paths: str = "warm") -> list[dict[str, Any]]:
    engine = PostingEngine(url, Metrics())
    assert engine.execute([c.CreateAsset("bench-asset", "USD", 2)])[0].code == 0
    accounts: list[uuid.UUID] = []
    for start in range(0, ACCOUNTS, 500):
        outcomes = engine.execute([c.CreateAccount(f"bench-acct-{i}", "USD", False, False)
                                   for i in range(start, start + 500)])
        accounts += [uuid.UUID(ledger_pb2.Account.FromString(o.payload).id) for o in outcomes]

    def transfer() -> c.CreateTransfer:
        debit, credit = random.sample(accounts, 2)
        return c.CreateTransfer(str(uuid.uuid4()), debit, credit, 100, "USD", False, 0)

    def batch(size: int) -> list[c.Job]:
        return [transfer() for _ in range(size)]

    for _ in range(20):
        engine.execute(batch(250))
    engine.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    freeze_startup_heap()  # as every server process does before it serves
    def block(size: int, reps: int, warm: bool) -> dict[str, Any]:
        engine.warm_path = warm
        batches = [batch(size) for _ in range(reps)]
        engine.execute(batch(size))  # connect, prepare
        pid = engine._connection().info.backend_pid
        pg0, cpu0, wall0 = _backend_cpu_s(pid), _process_cpu_s(), time.perf_counter()
        for jobs in batches:
            assert all(o.code == 0 for o in engine.execute(jobs))
        cpu, wall, pg1 = _process_cpu_s() - cpu0, time.perf_counter() - wall0, _backend_cpu_s(pid)
        pg = None if pg0 is None or pg1 is None else pg1 - pg0
        return {"size": size, "path": "warm" if warm else "read", "batches": reps,
                "python_ms_per_batch": cpu / reps * 1000, "wall_ms_per_batch": wall / reps * 1000,
                "python_us_per_transfer": cpu / reps / size * 1e6,
                "pg_ms_per_batch": float("nan") if pg is None else pg / reps * 1000}

    rows = []
    for size in sizes:
        reps = max(1, int(REPS.get(size, max(1, 4000 // size)) * rep_scale))
        if paths != "both":
            rows.append(block(size, reps, paths == "warm"))
            continue
        blocks: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for round_ in range(3):  # alternated, the order swapped each round: the machine drifts
            for warm in (True, False) if round_ % 2 == 0 else (False, True):
                blocks[warm].append(block(size, max(1, reps // 3), warm))
        for warm in (True, False):
            rows.append(sorted(blocks[warm], key=lambda r: r["wall_ms_per_batch"])[1])  # the median block
    engine.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: the harness's choice)")
    parser.add_argument("--sizes", default="1,25,1000", help="transfers per batch")
    parser.add_argument("--reps", type=float, default=1.0, help="scale the number of batches per size")
    parser.add_argument("--paths", choices=("warm", "read", "both"), default="warm",
                        help="warm: the engine as it runs (transfers between remembered accounts take the warm "
                             "path); read: every batch reads; both: the two alternated")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    assert all(1 <= s <= 8000 for s in sizes) and 0 < args.reps <= 10
    server = PostgresServer(args.database_url)
    try:
        _, url = server.create_database("engine")
        migrate(url)
        rows = measure(url, sizes, args.reps, args.paths)
    finally:
        server.drop_databases()
        server.stop()
    print("| transfers per batch | path | batches | Python ms per batch | PostgreSQL ms per batch "
          "| wall ms per batch | Python µs per transfer |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['size']} | {r['path']} | {r['batches']} | {r['python_ms_per_batch']:.2f} "
              f"| {r['pg_ms_per_batch']:.2f} | {r['wall_ms_per_batch']:.2f} | {r['python_us_per_transfer']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
