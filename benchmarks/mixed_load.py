"""Single transfers while bulk CreateTransfers calls run: how long a payment waits behind an import.

    python -m benchmarks.mixed_load                                   # defaults below
    python -m benchmarks.mixed_load --bulk-items 0,250,1000 --writers shared,own --rate 175

For each writer mode and bulk size (0: no bulk traffic), a fresh database and a fresh
`ledger-server --processes N` (a real subprocess; `own`: LEDGER_SHARED_WRITER=0, one writer per
process; `shared`: one writer for all). One thread sends CreateTransfers calls of that many items
back to back (closed loop); meanwhile single CreateTransfer calls arrive as a Poisson stream at
--rate per second (open loop, over 8 connections so the kernel spreads them over the processes),
each latency counted from the moment the call was due, not when a sender got to it (no
coordinated omission). Every transfer is between random accounts of --accounts, so bulk calls and
single ones share accounts, as a settlement import and card payments share merchant accounts.
Prints one Markdown table; the numbers are the single calls' latencies.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from benchmarks import auth
from benchmarks.databases import PostgresServer
from benchmarks.services import free_port_block, ledger_server
from ledger.v1 import ledger_pb2 as pb
from ledger.v1 import ledger_pb2_grpc
from ledger_server.migrate import migrate

SENDERS = 8  # threads (and connections) sending the single calls; each owns every 8th due time
CALL_TIMEOUT_S = 60.0
MESSAGE_BYTES_MAX = 64 * 1024 * 1024


@dataclass(frozen=True)
class Row:
    writers: str
    bulk_items: int
    bulk_transfers_per_s: float
    singles: int
    latencies_ms: tuple[float, ...]  # sorted

    def quantile(self, q: float) -> float:
        return self.latencies_ms[min(len(self.latencies_ms) - 1, int(len(self.latencies_ms) * q))]


def _rid(kind: str) -> str:
    return f"mixed-{kind}-{uuid.uuid4().hex}"


def _transfer(accounts: list[str], rng: random.Random) -> pb.CreateTransferRequest:
    debit, credit = rng.sample(accounts, 2)
    return pb.CreateTransferRequest(request_id=_rid("t"), debit_account_id=debit, credit_account_id=credit,
                                    amount="1", asset="USD")


def measure(database_url: str, writers: str, bulk_items: int, rate: float, seconds: float, accounts_n: int,
            processes: int) -> Row:
    service = ledger_server(database_url, free_port_block(processes), None, processes=processes)
    service.env["LEDGER_SHARED_WRITER"] = "1" if writers == "shared" else "0"
    service.start()
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
               ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX)]
    channels = [auth.channel(service.target, options) for _ in range(SENDERS + 1)]
    try:
        stubs = [ledger_pb2_grpc.LedgerStub(channel) for channel in channels]
        stubs[0].CreateAsset(pb.CreateAssetRequest(request_id=_rid("asset"), code="USD", scale=2))
        accounts = [stubs[0].CreateAccount(pb.CreateAccountRequest(request_id=_rid("account"), asset="USD")).id
                    for _ in range(accounts_n)]
        stop = threading.Event()
        bulk_done = [0]
        latencies: list[float] = []
        lock = threading.Lock()
        start = time.perf_counter() + 0.2
        gaps = random.Random(7)
        due_times: list[float] = []
        due = start
        while due < start + seconds:
            due += gaps.expovariate(rate)
            due_times.append(due)

        def bulk() -> None:
            rng = random.Random(1)
            while not stop.is_set():
                items = [_transfer(accounts, rng) for _ in range(bulk_items)]
                stubs[0].CreateTransfers(pb.CreateTransfersRequest(request_id=_rid("bulk"), transfers=items),
                                         timeout=CALL_TIMEOUT_S)
                if time.perf_counter() <= start + seconds:
                    bulk_done[0] += bulk_items

        def single(index: int) -> None:
            rng = random.Random(100 + index)
            for due_at in due_times[index::SENDERS]:
                wait = due_at - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                stubs[1 + index].CreateTransfer(_transfer(accounts, rng), timeout=CALL_TIMEOUT_S)
                with lock:
                    latencies.append((time.perf_counter() - due_at) * 1000)

        threads = [threading.Thread(target=single, args=(i,)) for i in range(SENDERS)]
        if bulk_items:
            threads.append(threading.Thread(target=bulk))
        for thread in threads:
            thread.start()
        for thread in threads[:SENDERS]:
            thread.join()
        stop.set()
        for thread in threads[SENDERS:]:
            thread.join()
        return Row(writers, bulk_items, bulk_done[0] / seconds, len(latencies), tuple(sorted(latencies)))
    finally:
        for channel in channels:
            channel.close()
        service.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mixed_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: the harness's choice)")
    parser.add_argument("--bulk-items", default="0,250,1000", help="items per bulk call, one run each (0: none)")
    parser.add_argument("--writers", default="shared,own", help="shared: one writer for all processes; own: one each")
    parser.add_argument("--rate", type=float, default=175.0, help="single calls per second offered")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.bulk_items.split(",")]
    modes = args.writers.split(",")
    assert all(0 <= s <= 8000 for s in sizes) and set(modes) <= {"shared", "own"}
    assert 0 < args.rate <= 5000 and 0 < args.seconds <= 600 and 2 <= args.accounts <= 100_000
    server = PostgresServer(args.database_url)
    rows = []
    try:
        for mode in modes:
            for size in sizes:
                _, url = server.create_database("mixed")
                migrate(url)
                rows.append(measure(url, mode, size, args.rate, args.seconds, args.accounts, args.processes))
    finally:
        server.drop_databases()
        server.stop()
    print(f"Single CreateTransfer calls at {args.rate:.0f}/s (open loop, latency from the due time) beside one "
          f"closed-loop sender of bulk CreateTransfers; {args.processes} server processes, {args.accounts} accounts.\n")
    print("| writers | bulk items per call | bulk transfers/s | single calls | p50 ms | p90 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.writers} | {r.bulk_items} | {r.bulk_transfers_per_s:,.0f} | {r.singles} | {r.quantile(0.5):.1f} "
              f"| {r.quantile(0.9):.1f} | {r.quantile(0.99):.1f} | {r.latencies_ms[-1]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
