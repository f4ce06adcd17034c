"""Card authorization latency in the harness (`python -m benchmarks.run --cards`).

One stack (ledger server + card gateway as processes, the local PostgreSQL, Redis when given),
200 funded cards, then open-loop authorization load at each rate of --card-rates: latency is
charged from each request's due time (no coordinated omission). CPU seconds of the gateway, the
ledger and the load generator are metered per rate, so a reader sees which one saturates first.
The load is the same code as `python -m ledger_cards.bench`.
"""

from __future__ import annotations

import datetime as dt
import resource
import time
from typing import Any

import psutil
import uvloop

from benchmarks.cpu import CpuMeter, PostgresProcesses, tree_cpu_s
from ledger_cards import bench as card_bench
from ledger_server.gc_pauses import freeze_startup_heap

CARDS = 200


def _cpu_s(process: psutil.Process) -> float:
    return tree_cpu_s(process) or 0.0


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(stack: card_bench.Stack, rates: list[float], seconds: float, warmup_s: float,
                   processes: dict[str, psutil.Process], meter: CpuMeter) -> list[dict[str, Any]]:
    cards = await card_bench.issue_cards(stack, CARDS, None)
    await card_bench.load(stack, cards, rates[0], warmup_s, 64)
    freeze_startup_heap()  # the load generator's own pauses would count as the gateway's latency
    rows = []
    for rate in rates:
        before = {name: _cpu_s(p) for name, p in processes.items()}
        own, started = _own_cpu_s(), time.monotonic()
        meter.start(None)
        figures = await card_bench.load(stack, cards, rate, seconds, 64)
        usage = meter.stop()
        wall = time.monotonic() - started
        cpu = {name: round(_cpu_s(p) - before[name], 2) for name, p in processes.items()}
        cpu["load generator"] = round(_own_cpu_s() - own, 2)
        if usage.postgres_s is not None:
            cpu["postgres"] = round(usage.postgres_s, 2)
        cpu["machine busy"] = round(usage.machine_busy_s / (usage.machine_cores * usage.wall_s), 3)
        rows.append({"rate": rate, **figures, "wall_s": round(wall, 2), "cpu_s": cpu,
                     "gateway_cpu_ms_per_auth": round(cpu["gateway"] / max(1, figures["requests"]) * 1000, 3),
                     "ledger_cpu_ms_per_auth": round(cpu["ledger"] / max(1, figures["requests"]) * 1000, 3)})
    return rows


def run_cards(admin_url: str, redis_url: str | None, rates: list[float], seconds: float,
              warmup_s: float, ledger_processes: int = 1, gateway_processes: int = 1,
              logs: str | None = None) -> dict[str, Any]:
    assert rates and all(0 < r <= 20_000 for r in rates) and 0 < seconds <= 600
    stack = card_bench.start_stack(admin_url, redis_url, budget_ms=250, ledger_processes=ledger_processes,
                                   gateway_processes=gateway_processes, logs=logs)
    postgres = PostgresProcesses(admin_url)
    try:
        ledger, gateway = stack.processes[0], stack.processes[1]
        processes = {"gateway": psutil.Process(gateway.pid), "ledger": psutil.Process(ledger.pid)}
        meter = CpuMeter(postgres, {stack.database})
        # The load generator on uvloop, as `ledger_cards.bench` and the gateway are: 10% less of its
        # CPU on the shared cores (1.86-1.97 -> 1.62-1.77 s per 15 s at 500/s).
        rows = uvloop.run(_measure(stack, rates, seconds, warmup_s, processes, meter))
    finally:
        postgres.close()
        stack.stop()
    return {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "redis": bool(redis_url),
            "cards": CARDS, "seconds_per_rate": seconds, "cpus": psutil.cpu_count(),
            "ledger_processes": ledger_processes, "gateway_processes": gateway_processes, "rates": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Card authorization latency",
        "",
        f"Run {result['started']} on {result['cpus']} cores; gateway ({result.get('gateway_processes', 1)} "
        f"process(es)), ledger ({result.get('ledger_processes', 1)} process(es)), PostgreSQL"
        f"{', Redis' if result['redis'] else ''} and the load generator share them. Open loop, "
        f"{result['seconds_per_rate']:g} s per rate, {result['cards']} cards, latency from each request's due "
        "time to its answer. Target: p99 <= 20 ms at 500 authorizations/s.",
        "",
        "| offered/s | achieved/s | p50 ms | p90 ms | p99 ms | max ms | answers over 50 ms (in how many seconds) "
        "| results | CPU s gateway / ledger / PostgreSQL / load gen | machine busy "
        "| gateway ms CPU per auth | ledger ms CPU per auth |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rates"]:
        cpu = row["cpu_s"]
        results = ", ".join(f"{k} {v}" for k, v in sorted(row["results"].items()))
        lines.append(
            f"| {row['rate']:g} | {row['achieved_rate']:,.0f} | {row['p50_ms']} | {row['p90_ms']} | {row['p99_ms']} "
            f"| {row['max_ms']} | {row.get('over_50_ms', '-')} ({row.get('seconds_with_an_answer_over_50_ms', '-')}) "
            f"| {results} | {cpu['gateway']} / {cpu['ledger']} / {cpu.get('postgres', '-')} "
            f"/ {cpu['load generator']} | {cpu.get('machine busy', 0):.0%} "
            f"| {row['gateway_cpu_ms_per_auth']} | {row['ledger_cpu_ms_per_auth']} |")
    return "\n".join(lines) + "\n"
