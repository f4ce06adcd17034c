"""The benchmark harness end to end, in seconds, so it cannot rot: every workload, every baseline.

Runs `python -m benchmarks.run --smoke` (tiny counts, sub-second phases) against the test
PostgreSQL and checks the artifacts a full run commits: JSON, Markdown, plots. Throughput and
latency are reported, never asserted: this machine is shared and small.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SERIES = {
    "echo", "echo-aio", "uniform", "hot", "card", "batch", "naive-uniform", "naive-hot", "extra-not-durable",
}


def test_smoke_run_produces_the_report(pg_admin_url: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--quiet", "--database-url", pg_admin_url,
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads((out / "results.json").read_text())

    assert result["checks"]["ok"], result["checks"]
    assert result["meta"]["postgres"]["fsync"] == "on"
    assert result["meta"]["postgres"]["synchronous_commit"] == "on"
    closed = [p for p in result["phases"] if p["mode"] == "closed"]
    assert {p["series"] for p in closed} == SERIES
    for phase in result["phases"]:
        assert phase["calls"] > 0, phase["name"]
        assert not phase["errors"], (phase["name"], phase["errors"])
        assert phase["cpu"]["load_generator_s"] > 0, phase["name"]
        if phase["target"] == "ledger":
            assert phase["server_metrics"]["batches"] > 0, phase["name"]
            assert 0 <= phase["server_metrics"]["warm_share"] <= 1, phase["name"]
            assert phase["cpu"]["server_s"] is not None
    batch = next(p for p in closed if p["series"] == "batch")
    assert batch["transfers"] == batch["calls"] * result["meta"]["settings"]["batch_size"]
    assert [p for p in result["phases"] if p["mode"] == "open"], "no open-loop phase"
    not_durable = [p for p in result["phases"] if p["series"] == "extra-not-durable"]
    assert all("NOT DURABLE" in p["name"] and "synchronous_commit=off" in p["target"] for p in not_durable)
    assert result["pgbench"]["tps"] > 0
    assert result["summary"]["targets"] and result["summary"]["ratios"]["uniform_vs_echo"]

    markdown = (out / "results.md").read_text()
    for heading in ("## Targets", "## Peaks and ratios", "## Every phase"):
        assert heading in markdown
    for plot in ("throughput.png", "latency.png"):
        assert (out / plot).read_bytes().startswith(b"\x89PNG"), plot


def test_soak_mode_reports_memory(pg_admin_url: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "soak"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--soak", "--quiet",
         "--database-url", pg_admin_url, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads((out / "soak.json").read_text())
    assert result["rss_mb"] and all(rss > 0 for _, rss in result["rss_mb"])
    assert result["throughput"]["calls_per_s"] > 0
    assert (out / "soak_rss.png").read_bytes().startswith(b"\x89PNG")


def test_card_latency_mode_reports_percentiles_and_cpu(pg_admin_url: str, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "cards"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--cards", "--quiet",
         "--database-url", pg_admin_url, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads((out / "cards.json").read_text())
    (row,) = result["rates"]
    assert row["requests"] == 20 and row["p99_ms"] > 0 and sum(row["results"].values()) == 20
    assert row["results"].get("APPROVED", 0) == 20, row["results"]
    assert set(row["cpu_s"]) == {"gateway", "ledger", "postgres", "load generator", "machine busy"}
    assert 0 < row["cpu_s"]["machine busy"] <= 1
    assert "| offered/s |" in (out / "cards.md").read_text()


@pytest.mark.parametrize("command", [
    ["benchmarks.engine", "--sizes", "1,5", "--reps", "0.02", "--paths", "both"],
    ["benchmarks.handler_path", "--calls", "50", "--redis-url", "none"],
    ["benchmarks.aio_handlers", "--levels", "4", "--seconds", "1", "--reps", "1"],
    ["benchmarks.mixed_load", "--bulk-items", "0,20", "--seconds", "1", "--rate", "20", "--accounts", "50",
     "--writers", "shared,own"],
])
def test_engine_and_handler_measurements_run(pg_admin_url: str, command: list[str]) -> None:
    run = subprocess.run([sys.executable, "-m", *command, "--database-url", pg_admin_url],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    if "benchmarks.mixed_load" in command:
        assert "| shared | 20 |" in run.stdout and "| own | 0 |" in run.stdout, run.stdout
        return
    assert "µs" in run.stdout
    if "--paths" in command:
        assert "| warm |" in run.stdout and "| read |" in run.stdout, run.stdout


def test_profiles_fold_the_writer_process_by_its_thread_name() -> None:
    """py-spy --subprocesses starts each stack with quoted process command lines, which may hold
    semicolons (multiprocessing's spawn command does): the writer process's samples still count as
    the writer's, the handlers' as the handlers'."""
    from benchmarks.profiling import Profile, parse_collapsed

    server = 'process 10:"python -B -c from multiprocessing.spawn import spawn_main; spawn_main(pipe_handle=8)"'
    writer = 'process 11:"python -m ledger_server.writer_process --fd 9"'
    raw = "\n".join([
        f"{server};thread (100): rpc_3;submit (ledger_server/writer_process.py:90);Condition.wait (threading.py:327) 5",
        f"{server};{writer};thread (101): group-committer;_serve (ledger_server/writer_process.py:300);"
        "Pipeline._next_result (ledger_server/pipeline.py:189) 7",
    ])
    profile = Profile(seconds=1)
    names = parse_collapsed(raw, profile)
    assert names == {100: "rpc_3", 101: "group-committer"}
    assert profile.by_group == {"rpc handlers": 5, "group-commit writer": 7}
    assert profile.categories["group-commit writer"] == {
        "PostgreSQL round trips (pipeline.py: sending, waiting, reading results)": 7}
