"""Turning raw phase measurements into the figures the report shows, and the targets it checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchmarks.load import WorkerReport

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))


def percentile(sorted_values: Sequence[int], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (no interpolation between samples)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def latency_ms(latencies_us: Sequence[int]) -> dict[str, float]:
    ordered = sorted(latencies_us)
    if not ordered:
        return {name: math.nan for name, _ in PERCENTILES} | {"mean": math.nan, "max": math.nan}
    figures = {name: percentile(ordered, pct) / 1000 for name, pct in PERCENTILES}
    figures["mean"] = sum(ordered) / len(ordered) / 1000
    figures["max"] = ordered[-1] / 1000
    return {k: round(v, 3) for k, v in figures.items()}


def latency_curve_ms(latencies_us: Sequence[int], points: int = 200) -> list[tuple[float, float]]:
    """(percentile, latency ms) pairs spread on a log scale towards the tail, for plotting."""
    ordered = sorted(latencies_us)
    if not ordered:
        return []
    curve = []
    for i in range(points):
        nines = 4.0 * i / (points - 1)  # 0 .. 99.99 %
        pct = 100.0 * (1 - 10 ** (-nines))
        curve.append((round(pct, 4), round(percentile(ordered, max(pct, 0.0001)) / 1000, 3)))
    return curve


def phase_figures(report: WorkerReport, duration_s: float) -> dict[str, Any]:
    calls = report.calls
    return {
        "calls": calls,
        "transfers": report.transfers,
        "calls_per_s": round(calls / duration_s, 1),
        "transfers_per_s": round(report.transfers / duration_s, 1),
        "errors": dict(report.errors),
        "latency_ms": latency_ms(report.latencies_us),
        "per_second": report.per_second[: int(duration_s)],
        "late_sends": report.late_sends,
    }


def server_metrics_delta(
    before: dict[str, float], after: dict[str, float], wall_s: float
) -> dict[str, float]:
    """Batches formed, their mean size, how busy the writer was, retries and splits, and the calls'
    time inside the handlers, in a window."""
    batches = after["batches"] - before["batches"]
    jobs = after["batch_jobs_sum"] - before["batch_jobs_sum"]
    busy = after["batch_seconds_sum"] - before["batch_seconds_sum"]
    rpcs = after["rpcs"] - before["rpcs"]
    return {
        "batches": batches,
        "jobs_per_batch": round(jobs / batches, 2) if batches else 0.0,
        "batch_ms_mean": round(1000 * busy / batches, 3) if batches else 0.0,
        "writer_busy": round(busy / wall_s, 3) if wall_s > 0 else 0.0,
        "lock_wait_ms_mean": round(
            1000 * (after["lock_wait_seconds_sum"] - before["lock_wait_seconds_sum"]) / batches, 3
        ) if batches else 0.0,
        # Committed batches that took the warm path (one round trip, ledger_server/posting.py).
        "warm_share": round((after.get("warm_batches", 0.0) - before.get("warm_batches", 0.0)) / batches, 3)
        if batches else 0.0,
        "retries": after["retries"] - before["retries"],
        "splits": after["splits"] - before["splits"],
        # Inside the handlers (ledger_server/rpc_handler.py's timer: validation, the writer, the
        # response): the part of the client's latency that is the ledger's own work and queue.
        "handler_ms_mean": round(1000 * (after["rpc_seconds_sum"] - before["rpc_seconds_sum"]) / rpcs, 3)
        if rpcs else 0.0,
        "handler_over_10ms": round(1 - (after["rpcs_within_10ms"] - before["rpcs_within_10ms"]) / rpcs, 4)
        if rpcs else 0.0,
    }


def peak(
    phases: Sequence[dict[str, Any]], series: str, key: str = "transfers_per_s"
) -> dict[str, Any] | None:
    """The phase of a series with the highest throughput."""
    candidates = [p for p in phases if p["series"] == series and p["mode"] == "closed"]
    return max(candidates, key=lambda p: p[key]) if candidates else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def summarize(phases: Sequence[dict[str, Any]], pgbench_tps: float | None) -> dict[str, Any]:
    """Peaks per series, the ratios the targets are stated in, and each target's verdict."""
    peaks = {}
    for series in sorted({p["series"] for p in phases if p["mode"] == "closed"}):
        best = peak(phases, series)
        assert best is not None
        peaks[series] = {"transfers_per_s": best["transfers_per_s"], "calls_per_s": best["calls_per_s"],
                         "concurrency": best["concurrency"], "p99_ms": best["latency_ms"]["p99"]}

    def rate(series: str, key: str = "transfers_per_s") -> float | None:
        return peaks[series][key] if series in peaks else None

    ratios = {
        "uniform_vs_echo": _ratio(rate("uniform", "calls_per_s"), rate("echo", "calls_per_s")),
        "uniform_vs_pgbench": _ratio(rate("uniform"), pgbench_tps),
        "hot_vs_uniform": _ratio(rate("hot"), rate("uniform")),
        "hot_vs_naive_hot": _ratio(rate("hot"), rate("naive-hot")),
        "uniform_vs_naive_uniform": _ratio(rate("uniform"), rate("naive-uniform")),
        "batch_vs_pgbench": _ratio(rate("batch"), pgbench_tps),
        "card_vs_pgbench": _ratio(rate("card"), pgbench_tps),
    }
    open_loop = [p for p in phases if p["mode"] == "open" and p["series"] == "uniform"]
    open_p99 = open_loop[0]["latency_ms"]["p99"] if open_loop else None
    targets = [
        ("uniform >= 0.7x echo (same client)", ratios["uniform_vs_echo"], 0.7),
        ("uniform >= 1.0x pgbench TPS", ratios["uniform_vs_pgbench"], 1.0),
        ("hot >= 0.8x uniform", ratios["hot_vs_uniform"], 0.8),
        ("hot >= 5x naive ledger on hot", ratios["hot_vs_naive_hot"], 5.0),
        ("batch >= 5x pgbench TPS (aim 10x)", ratios["batch_vs_pgbench"], 5.0),
    ]
    verdicts = [
        {"target": name, "measured": value, "goal": goal, "met": None if value is None else value >= goal}
        for name, value, goal in targets
    ]
    verdicts.append({
        "target": "p99 < 10 ms at half the peak (open loop, single transfers)", "measured": open_p99,
        "goal": 10.0, "met": None if open_p99 is None or math.isnan(open_p99) else open_p99 < 10.0,
    })
    return {"peaks": peaks, "ratios": ratios, "targets": verdicts}
