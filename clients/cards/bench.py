"""Authorization latency benchmark: open-loop load at a fixed rate, end-to-end latency percentiles.

    python -m ledger_cards.bench --rate 500 --seconds 20

Self-contained: creates a fresh database on the PostgreSQL at --database-url, starts `ledger-server`
and `ledger-card-gateway serve` as child processes (and uses Redis at --redis-url for the spend
counters when given), issues funded cards, then sends signed authorization requests on a fixed
schedule (open loop: a request's latency counts from when it was due, so a slow answer cannot hide
the queueing it causes). The client is a minimal HTTP/1.1 writer on keep-alive connections, so the
load generator's own cost stays small on a shared machine. Prints a JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from ledger_cards.http_wire import HttpConnection
from ledger_cards.signatures import new_secret, signed_headers
from ledger_client import AsyncLedgerClient, NewTransfer
from ledger_server.gc_pauses import freeze_startup_heap

CONNECTIONS_MAX = 256
REQUESTS_MAX = 500_000  # built and signed before the run (about 1 KiB each): the memory bound of one rate


@dataclass
class Stack:
    processes: list[subprocess.Popen[bytes]]
    database: str
    admin_url: str
    ledger_target: str
    gateway_port: int
    secret: str
    admin_key: str
    ledger_key: str

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _with_database(admin_url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def start_stack(admin_url: str, redis_url: str | None, budget_ms: int, ledger_processes: int = 1,
                gateway_processes: int = 1, logs: str | None = None) -> Stack:
    """`logs`: a folder for the servers' logs (ledger.log, gateway.log; else they are dropped)."""
    from ledger_server.migrate import migrate

    database = f"card_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = _with_database(admin_url, database)
    migrate(url)
    ledger_port, gateway_port = _free_port(), _free_port()
    ledger_key = "bench-" + uuid.uuid4().hex + uuid.uuid4().hex
    secret, admin_key = new_secret(), "bench-admin-" + uuid.uuid4().hex
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_LISTEN": f"127.0.0.1:{ledger_port}",
           "LEDGER_BOOTSTRAP_ADMIN_KEY": ledger_key, "LEDGER_RATE_LIMIT": "1000000",
           "LEDGER_RATE_LIMIT_BURST": "1000000", "LEDGER_LOG_LEVEL": "WARNING",
           "LEDGER_TARGET": f"127.0.0.1:{ledger_port}", "LEDGER_API_KEY": ledger_key,
           "CARD_WEBHOOK_SECRETS": secret, "CARD_GATEWAY_ADMIN_KEY": admin_key}
    env.pop("LEDGER_REDIS_URL", None)
    env["LEDGER_PROCESSES"] = str(ledger_processes)
    env["LEDGER_CONNECTIONS"] = str(1 if ledger_processes == 1 else 4 * ledger_processes)
    if redis_url:
        env["LEDGER_REDIS_URL"] = redis_url
    stack = Stack([], database, admin_url, f"127.0.0.1:{ledger_port}", gateway_port, secret, admin_key, ledger_key)
    try:
        stack.processes.append(subprocess.Popen([sys.executable, "-m", "ledger_server.main"], env=env,
                                                stdout=subprocess.DEVNULL, stderr=_log(logs, "ledger")))
        _wait_grpc(stack.ledger_target)
        stack.processes.append(subprocess.Popen(
            [sys.executable, "-m", "ledger_cards.main", "serve", "--listen", f"127.0.0.1:{gateway_port}",
             "--auth-budget-ms", str(budget_ms), "--processes", str(gateway_processes)],
            env=env, stdout=subprocess.DEVNULL, stderr=_log(logs, "gateway")))
        _wait_http(f"http://127.0.0.1:{gateway_port}/healthz")
    except Exception:
        stack.stop()
        raise
    return stack


def _log(folder: str | None, name: str) -> Any:
    """Where a server's log goes: a file in `folder` (appended to), or nowhere."""
    if folder is None:
        return subprocess.DEVNULL
    os.makedirs(folder, exist_ok=True)
    return open(os.path.join(folder, f"{name}.log"), "ab")  # the child writes to it until it stops


def _wait_grpc(target: str) -> None:
    import grpc

    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)


def _wait_http(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


async def issue_cards(stack: Stack, count: int, daily_limit: int | None) -> list[str]:
    async with AsyncLedgerClient(stack.ledger_target, token=stack.ledger_key, timeout=60) as ledger:
        await ledger.create_asset(code="USD", scale=2, request_id="bench-asset-USD")
        funding = await ledger.create_account(asset="USD")
        wallets = [await ledger.create_account(asset="USD", debits_must_not_exceed_credits=True)
                   for _ in range(count)]
        transfers = [NewTransfer(debit_account_id=funding.id, credit_account_id=w.id, amount=10**12, asset="USD")
                     for w in wallets]
        assert (await ledger.create_transfers(transfers=transfers, atomic=True)).ok
    tokens = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.gateway_port}", timeout=30) as http:
        for wallet in wallets:
            token = "card_" + uuid.uuid4().hex
            payload: dict[str, Any] = {"card_token": token, "account_id": wallet.id}
            if daily_limit:
                payload["daily_limit"] = daily_limit
            response = await http.post("/v1/cards", json=payload,
                                       headers={"authorization": f"Bearer {stack.admin_key}"})
            assert response.status_code == 201, response.text
            tokens.append(token)
    return tokens


def _signed_request(stack: Stack, cards: list[str], index: int, due_unix_s: int) -> tuple[bytes, dict[str, str]]:
    token = "auth_" + uuid.uuid4().hex
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = json.dumps({"token": token, "card_token": cards[index % len(cards)], "amount": 100 + index % 900,
                       "currency": "USD", "created": created,
                       "merchant": {"mcc": "5411", "name": "Bench", "country": "US"}}).encode()
    headers = signed_headers(stack.secret, "authreq_" + token, body, due_unix_s)
    headers.pop("content-type")
    headers["content-type"] = "application/json"
    return body, headers


async def load(stack: Stack, cards: list[str], rate: float, seconds: float, connections: int) -> dict[str, Any]:
    """Open-loop: request i is due at start + i/rate; its latency runs from then to its answer."""
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await HttpConnection.open("127.0.0.1", stack.gateway_port))
    total = int(rate * seconds)
    if total > REQUESTS_MAX:
        raise ValueError(f"rate x seconds = {total} requests: at most {REQUESTS_MAX} per run (they are built ahead)")
    latencies: list[float] = []
    slowest: dict[int, float] = {}  # per second of the schedule: its slowest answer
    results: Counter[str] = Counter()
    # Every request is built and signed before the clock starts (the processor's cost, not ours, and
    # CPU the load generator would otherwise take from the services it measures on shared cores).
    # Each is signed with the time it is due, so a run of any length stays inside the tolerance.
    began = time.time()
    requests = [_signed_request(stack, cards, index, int(began + index / rate)) for index in range(total)]
    freeze_startup_heap()  # measured: a full collection scanning them took 25-31 ms mid-run

    async def one(index: int, due: float) -> None:
        body, headers = requests[index]
        connection = await pool.get()
        try:
            status, answer = await connection.post("/v1/authorizations", body, headers)
        finally:
            pool.put_nowait(connection)
        latency = time.perf_counter() - due
        latencies.append(latency)
        second = int(index / rate)
        slowest[second] = max(slowest.get(second, 0.0), latency)
        results[json.loads(answer)["result"] if status == 200 else f"http_{status}"] += 1

    start = time.perf_counter() + 0.05
    wall_start = time.time() + (start - time.perf_counter())  # to find a slow second in the servers' logs
    tasks = []
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    # Where the tail came from: a p99 made by one stall shows as one or two slow seconds, a p99 made
    # by steady queueing as slow answers in every second.
    worst = max(slowest, key=slowest.__getitem__)
    return {"requests": total, "seconds": round(elapsed, 2), "achieved_rate": round(total / elapsed, 1),
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2), "results": dict(results),
            "over_50_ms": sum(1 for x in ordered if x > 0.05), "worst_second_at_s": worst,
            "seconds_with_an_answer_over_50_ms": sum(1 for x in slowest.values() if x > 0.05),
            "seconds_over_50_ms_utc": [time.strftime("%H:%M:%S", time.gmtime(wall_start + second))
                                       for second in sorted(slowest) if slowest[second] > 0.05][:20]}


async def _run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    cards = await issue_cards(stack, args.cards, args.daily_limit)
    await load(stack, cards, args.rate, args.warmup_seconds, args.connections)
    freeze_startup_heap()  # the load generator's own pauses would count as the gateway's latency
    report = await load(stack, cards, args.rate, args.seconds, args.connections)
    report.update({"rate_target": args.rate, "cards": args.cards, "redis": bool(args.redis_url),
                   "daily_limit": args.daily_limit, "cpus": os.cpu_count()})
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger_cards.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("LEDGER_BENCH_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="a maintenance database; the benchmark creates and drops its own")
    parser.add_argument("--redis-url", default=os.environ.get("LEDGER_REDIS_URL"))
    parser.add_argument("--rate", type=float, default=500.0, help="authorizations per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--cards", type=int, default=200)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--daily-limit", type=int, default=None, help="give every card a daily limit (Redis path)")
    parser.add_argument("--budget-ms", type=int, default=250)
    parser.add_argument("--ledger-processes", type=int, default=1, help="ledger-server --processes")
    parser.add_argument("--gateway-processes", type=int, default=1, help="ledger-card-gateway serve --processes")
    parser.add_argument("--logs", help="a folder for the ledger's and the gateway's logs (slow batches, timeouts)")
    args = parser.parse_args(argv)
    assert 0 < args.rate <= 20_000 and 0 < args.seconds <= 600 and 1 <= args.connections <= CONNECTIONS_MAX
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        pass
    stack = start_stack(args.database_url, args.redis_url, args.budget_ms, args.ledger_processes,
                        args.gateway_processes, args.logs)
    try:
        report = asyncio.run(_run(args, stack))
    finally:
        stack.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
