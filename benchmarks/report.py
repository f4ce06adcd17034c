"""The human side of a run: a Markdown report and PNG plots, from the result dictionary."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from typing import Any

SINGLE_SERIES = ("echo", "echo-aio", "uniform", "hot", "card", "naive-uniform", "naive-hot")
COLOR = {"echo": "k", "echo-aio": "grey", "uniform": "C0", "hot": "C1", "card": "C2", "batch": "C3",
         "naive-uniform": "C4", "naive-hot": "C5"}
LINE = {"echo": "--", "echo-aio": "--", "naive-uniform": ":", "naive-hot": ":"}


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cpu_cells(cpu: dict[str, Any]) -> list[str]:
    wall = cpu.get("wall_s") or 0.0
    ours = sum(cpu.get(k) or 0.0 for k in ("server_s", "postgres_s", "load_generator_s"))
    other = max(0.0, (cpu.get("machine_busy_s") or 0.0) - ours)
    return [_num(cpu.get("server_s"), 1), _num(cpu.get("postgres_s"), 1),
            _num(cpu.get("load_generator_s"), 1), _num(other, 1),
            _num(wall * (cpu.get("machine_cores") or 1), 0)]


def markdown(result: dict[str, Any], plots: bool = True) -> str:
    meta, summary = result["meta"], result["summary"]
    pg = meta["postgres"]
    out = ["# Ledger benchmark\n",
           f"Run {meta['started']} on {meta['machine']['cores']} cores ({meta['machine']['cpu']}), "
           f"Python {meta['machine']['python']}, PostgreSQL {pg['server_version']} ({pg['origin']}), "
           f"fsync={pg['fsync']}, synchronous_commit={pg['synchronous_commit']}, "
           f"commit {meta.get('git_commit') or '?'}; wall time {meta['wall_s']:.0f} s.\n",
           f"Reproduce: `{meta['command']}`\n"]
    settings = meta.get("settings") or {}
    processes = settings.get("server_processes", 1)
    out.append(f"Servers: the ledger and the echo servers each run as {processes} process"
               f"{'es sharing one port' if processes > 1 else ''}; each load process opens "
               f"{settings.get('connections', 1)} connection(s) per server.\n")
    checks = result.get("checks") or {}
    if checks:
        c = checks
        out.append(f"Books after the run: {'balanced' if c['ok'] else '**NOT BALANCED**'} (ledger debits - "
                   f"credits: posted {c['ledger_posted_debits_minus_credits']}, pending "
                   f"{c['ledger_pending_debits_minus_credits']}; {c['ledger_transfers_stored']:,} transfers "
                   f"stored >= {c['ledger_transfers_acknowledged_in_windows']:,} acknowledged in measured "
                   f"windows; naive ledger balance sum {c['naive_balance_sum']}).\n")
    out.append("## Targets\n")
    out.append(_table(["target", "measured", "goal", "met"], [
        [t["target"], _num(t["measured"], 2), _num(t["goal"], 1),
         {True: "yes", False: "**no**", None: "-"}[t["met"]]] for t in summary["targets"]
    ]))
    out.append(_peak_table(result))
    out.append("## Every phase\n")
    out.append("Closed loop unless marked open. Latency: client-side, per call, in ms; `jobs/batch (warm)`: "
               "the writer's mean batch, and the share of its batches that took the warm path (accounts from "
               "its memory, one round trip); `in handler`: the "
               "server's own measure of the same calls, from the handler's entry (after authentication and rate "
               "limiting) to its response (mean, and the share over 10 ms); the rest is the RPC layers, the "
               "access checks and waiting for a CPU. CPU: seconds used "
               "during the measured window by the ledger (or echo) server, the PostgreSQL processes "
               "(the benchmark's backends plus background writers), the load generator, and the rest "
               "of the machine (other users' work: noise); `avail` is cores x wall seconds.\n")
    rows = []
    for p in result["phases"]:
        lat = p["latency_ms"]
        sm = p.get("server_metrics", {})
        errors = sum(p["errors"].values())
        rows.append([
            p["name"], p["target"], _num(p["calls_per_s"]), _num(p["transfers_per_s"]),
            _num(lat["p50"], 2), _num(lat["p99"], 2), _num(lat["p999"], 2), _num(errors),
            _batch_cell(sm), _num(sm.get("writer_busy"), 2) if sm else "-",
            _handler_cell(sm), *_cpu_cells(p["cpu"]), _num(p.get("server_cpu_us_per_transfer"), 0),
            _num(p.get("postgres_cpu_us_per_transfer"), 0),
        ])
    pb = result.get("pgbench")
    if pb:
        rows.append([
            f"pgbench TPC-B -c {pb['clients']} (scale {pb['scale']})", "postgres",
            _num(pb["tps"]), _num(pb["tps"]),
            "-", "-", "-", "0", "-", "-", "-", "-", _num(pb["cpu"].get("postgres_s"), 1),
            _num(pb["cpu"]["load_generator_s"], 1),
            *_cpu_cells(pb["cpu"])[3:], "-",
            _num(1e6 * pb["cpu"]["postgres_s"] / (pb["tps"] * pb["seconds"]), 0)
            if pb["cpu"].get("postgres_s") else "-",
        ])
    out.append(_table(
        ["phase", "target", "calls/s", "transfers/s", "p50", "p99", "p99.9", "errors", "jobs/batch (warm)",
         "writer busy", "in handler ms (> 10 ms)", "CPU server", "CPU pg", "CPU loadgen", "CPU other", "avail",
         "server µs/transfer", "pg µs/transfer"], rows))
    if plots:
        out.append("## Plots\n\n![throughput](throughput.png)\n\n![latency](latency.png)\n")
    out.append(_profile_section(result.get("profiles") or {}))
    return "\n".join(out)


def _batch_cell(sm: dict[str, Any]) -> str:
    """Jobs per batch, and the share of batches that took the warm path (one round trip)."""
    if not sm:
        return "-"
    if "warm_share" not in sm:
        return _num(sm.get("jobs_per_batch"), 1)
    return f"{_num(sm.get('jobs_per_batch'), 1)} ({100 * sm['warm_share']:.0f}%)"


def _handler_cell(sm: dict[str, Any]) -> str:
    """Mean time a call spent inside the ledger's handler (validation, the writer, the response), and
    the share held there over 10 ms: the rest of the client's latency is the RPC layers, the access
    checks and waiting for a CPU on either side."""
    if "handler_ms_mean" not in sm:
        return "-"
    return f"{sm['handler_ms_mean']:.2f} ({100 * sm['handler_over_10ms']:.1f}%)"


def _peak_table(result: dict[str, Any]) -> str:
    summary = result["summary"]
    peaks = summary["peaks"]
    pgbench_tps = result["pgbench"]["tps"] if result.get("pgbench") else None
    echo = peaks.get("echo", {}).get("calls_per_s")
    rows = []
    for series in ("uniform", "hot", "card", "batch", "echo", "echo-aio", "naive-uniform", "naive-hot"):
        if series not in peaks:
            continue
        peak = peaks[series]
        naive = peaks.get("naive-hot" if series == "hot" else "naive-uniform", {}).get("transfers_per_s")
        rows.append([
            series, _num(peak["concurrency"]), _num(peak["calls_per_s"]), _num(peak["transfers_per_s"]),
            _num(peak["p99_ms"], 2),
            _ratio(round(peak["calls_per_s"] / echo, 2) if echo and series != "echo" else None),
            _ratio(round(peak["transfers_per_s"] / pgbench_tps, 2) if pgbench_tps else None),
            _ratio(round(peak["transfers_per_s"] / naive, 2)
                   if naive and not series.startswith("naive") else None),
        ])
    text = "## Peaks and ratios to the baselines (same run, same PostgreSQL)\n\n"
    text += ("Each series at its best closed-loop concurrency. `x echo` compares calls/s with the "
             "empty-handler server driven by the same client; `x pgbench` compares transfers/s with "
             f"pgbench TPC-B TPS ({_num(pgbench_tps)}); `x naive` compares with the textbook ledger on "
             "the same access pattern (hot for hot, uniform otherwise).\n\n")
    text += _table(["series", "concurrency", "calls/s", "transfers/s", "p99 ms", "x echo", "x pgbench",
                    "x naive"], rows)
    extra = peaks.get("extra-not-durable")
    if extra and "uniform" in peaks:
        ratio = extra["calls_per_s"] / max(1.0, peaks["uniform"]["calls_per_s"])
        text += ("\nExtra, **not durable** and never a reported figure: uniform at "
                 f"c={extra['concurrency']} on a ledger whose connections run with synchronous_commit=off: "
                 f"{_num(extra['calls_per_s'])} calls/s ({ratio:.2f}x the durable uniform peak): how much of "
                 "the cost is waiting for the WAL flush.\n")
    return text


def _profile_section(profiles: dict[str, Any]) -> str:
    if not profiles:
        return ""
    out = ["## Profile of the server (py-spy, /proc, perf)\n",
           "Thread CPU comes from /proc (every thread, C ones included). Busy samples are py-spy's "
           "(Python stacks of threads not blocked in a system call), sorted into categories by the "
           "first rule their stack matches (benchmarks/profiling.py). perf adds what Python cannot "
           "see: the kernel (thread switches, futex wake-ups) and the C libraries.\n"]
    for workload, prof in profiles.items():
        if "skipped" in prof:
            out.append(f"{workload}: skipped ({prof['skipped']})\n")
            continue
        out.append(f"### {workload} at concurrency {prof['concurrency']} "
                   f"({_num(prof['transfers_per_s_while_profiled'])} transfers/s while profiled, "
                   f"{prof['seconds']} s, stacks in `{prof['raw_path']}`)\n")
        total_cpu = sum(prof["thread_cpu_s"].values()) or 1.0
        out.append(_table(["thread group", "CPU s", "share of server CPU", "busy samples"], [
            [group, _num(cpu, 2), f"{100 * cpu / total_cpu:.0f}%",
             _num(prof["samples_by_thread_group"].get(group))]
            for group, cpu in prof["thread_cpu_s"].items() if cpu >= 0.005
        ]))
        for group, categories in prof.get("categories", {}).items():
            samples = sum(count for _, count in categories) or 1
            out.append(f"{group}: where its busy samples go\n")
            out.append(_table(["category", "share"], [
                [label, f"{100 * count / samples:.0f}%"] for label, count in categories
            ]))
        for group in ("group-commit writer", "rpc handlers"):
            inclusive = prof["inclusive"].get(group)
            samples = prof["samples_by_thread_group"].get(group)
            if not inclusive or not samples:
                continue
            out.append(f"{group}: top functions (inclusive share of its busy samples)\n")
            out.append(_table(["function", "share"], [
                [f"`{name}`", f"{100 * count / samples:.0f}%"] for name, count in inclusive[:12]
            ]))
        native = prof.get("native_libraries_pct") or {}
        if native:
            kernel = prof.get("kernel_symbols_pct") or {}
            out.append("perf, whole server process: CPU samples by library (top kernel symbols: "
                       + ", ".join(f"`{k}` {v:.1f}%" for k, v in list(kernel.items())[:4]) + ")\n")
            rows = [[f"`{k}`", f"{v:.1f}%"] for k, v in list(native.items())[:8]]
            out.append(_table(["library", "share"], rows))
    return "\n".join(out)


# -- plots -----------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_numbers(axis: Any) -> None:
    """Log-scale ticks as 3, 10, 30 rather than 3x10^0."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25" else ""))


def _series(result: dict[str, Any], series: str) -> list[dict[str, Any]]:
    return sorted((p for p in result["phases"] if p["series"] == series and p["mode"] == "closed"),
                  key=lambda p: p["concurrency"])


def plot_throughput(result: dict[str, Any], path: pathlib.Path) -> None:
    plt = _pyplot()
    fig, (single, batch) = plt.subplots(1, 2, figsize=(12, 4.5))
    pgbench_tps = result["pgbench"]["tps"] if result.get("pgbench") else None
    for series in SINGLE_SERIES:
        points = _series(result, series)
        if points:
            single.plot([p["concurrency"] for p in points], [p["calls_per_s"] for p in points],
                        color=COLOR[series], linestyle=LINE.get(series, "-"), marker="o", label=series)
    if pgbench_tps:
        single.axhline(pgbench_tps, color="grey", linestyle="-.", label="pgbench TPS")
    single.set(xscale="log", xlabel="calls in flight (closed loop)", ylabel="calls / s",
               title="Single-transfer calls")
    single.legend(fontsize=8)
    single.grid(alpha=0.3)
    points = _series(result, "batch")
    if points:
        batch.plot([p["concurrency"] for p in points], [p["transfers_per_s"] for p in points],
                   color=COLOR["batch"], marker="o", label="batch (CreateTransfers)")
    if pgbench_tps:
        for factor, style in ((1, "-."), (5, ":"), (10, "--")):
            batch.axhline(pgbench_tps * factor, color="grey", linestyle=style, label=f"{factor}x pgbench TPS")
    batch.set(xlabel="CreateTransfers calls in flight", ylabel="transfers / s", title="Batches")
    batch.legend(fontsize=8)
    batch.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(result: dict[str, Any], path: pathlib.Path) -> None:
    plt = _pyplot()
    fig, (closed, opened) = plt.subplots(1, 2, figsize=(12, 4.5))
    for series in ("uniform", "hot", "card", "echo", "naive-hot"):
        points = _series(result, series)
        if not points:
            continue
        xs = [p["concurrency"] for p in points]
        color = COLOR[series]
        for key, style in (("p50", ":"), ("p99", "-"), ("p999", "--")):
            closed.plot(xs, [p["latency_ms"][key] for p in points], color=color, linestyle=style, marker=".",
                        label=f"{series} {key}")
    closed.set(xscale="log", yscale="log", xlabel="calls in flight (closed loop)", ylabel="ms",
               title="Latency percentiles (p50 dotted, p99 solid, p99.9 dashed)")
    closed.legend(fontsize=6, ncol=3)
    closed.grid(alpha=0.3)
    for p in result["phases"]:
        curve = p.get("latency_curve_ms")
        if p["mode"] != "open" or not curve:
            continue
        xs = [1 / (1 - pct / 100) if pct < 100 else 1e4 for pct, _ in curve]
        opened.plot(xs, [ms for _, ms in curve], label=f"{p['name']} (achieved {p['calls_per_s']:.0f}/s)")
    opened.axhline(10, color="red", linestyle=":", label="10 ms")
    ticks = [1, 2, 10, 100, 1000, 10000]
    opened.set(xscale="log", yscale="log", xlabel="percentile", ylabel="ms from intended send time",
               title="Open loop at half the peak rate")
    opened.set_xticks(ticks, ["0", "50", "90", "99", "99.9", "99.99"])
    _plain_numbers(opened.yaxis)
    _plain_numbers(closed.yaxis)
    opened.legend(fontsize=8)
    opened.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- soak ------------------------------------------------------------------------------------------


def soak_markdown(result: dict[str, Any]) -> str:
    t = result["throughput"]
    verdict = {True: "flat (within 10%)", False: "**grew more than 10%**", None: "run too short to judge"}
    change = "-" if result["growth"] is None else f"{100 * result['growth']:+.1f}%"
    return (
        "# Soak: server memory under sustained load\n\n"
        f"Uniform single transfers, {result['meta']['concurrency']} in flight, "
        f"{result['meta']['seconds']:.0f} s; "
        f"{_num(t['calls_per_s'])} calls/s, p99 {_num(t['latency_ms']['p99'], 2)} ms, "
        f"errors {sum(t['errors'].values())}.\n\n"
        f"| RSS at minute 1 | RSS at minute 5 | change | verdict |\n| --- | --- | --- | --- |\n"
        f"| {_num(result['rss_minute_1_mb'], 1)} MiB | {_num(result['rss_minute_5_mb'], 1)} MiB | "
        f"{change} | {verdict[result['flat']]} |\n\n"
        "![rss](soak_rss.png)\n"
    )


def plot_soak(result: dict[str, Any], path: pathlib.Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    samples = result["rss_mb"]
    ax.plot([t for t, _ in samples], [m for _, m in samples], "C0-")
    for minute in (60, 300):
        ax.axvline(minute, color="grey", linestyle=":")
    ax.set(xlabel="seconds under load", ylabel="server RSS (MiB)", title="Ledger server memory, soak run")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
