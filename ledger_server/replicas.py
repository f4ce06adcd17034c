"""Several ledger server processes on one host, sharing one gRPC port (`ledger-server --processes N`).

Why: one Python process's interpreter lock serialises its gRPC handlers (its writer runs in a
process of its own, writer_process.py), so their work cannot use more than about one core however
many are free. N processes are N replicas of the ledger, exactly as if they ran on N hosts: each
has its own writer and group commit, and the correctness across them is the one replicas already
rely on (advisory locks per account taken before the batch reads, the write guard, dedupe rows in
PostgreSQL). The kernel spreads incoming connections over the processes (SO_REUSEPORT), so a client
needs several connections (or a balancer in front) to reach all of them. Supervision:
process_supervisor.py.
"""

from __future__ import annotations

from dataclasses import replace

from ledger_server.gc_pauses import freeze_startup_heap
from ledger_server.process_supervisor import PROCESSES_MAX, ChildContext, supervise
from ledger_server.server import LedgerServer, ServerConfig


def child_config(config: ServerConfig, index: int) -> ServerConfig:
    """Child `index`'s configuration: the shared port, its own metrics port (base + index), and
    the webhook dispatcher in child 0 only (one dispatcher per host is enough; more would only
    compete for the same rows, which their leases already make safe)."""
    metrics = config.metrics_listen
    if metrics:
        host, _, port = metrics.rpartition(":")
        metrics = f"{host}:{int(port) + index}"
    events = config.events if index == 0 else replace(config.events, webhooks=None)
    return replace(config, reuse_port=True, metrics_listen=metrics, events=events)


def _serve_one(context: ChildContext, config: ServerConfig, grace_s: float) -> None:
    server = LedgerServer(config).start()
    freeze_startup_heap()
    context.serving()
    context.stop.wait()
    server.stop(grace_s)


def serve(config: ServerConfig, processes: int, grace_s: float, log_level: str) -> int:
    """Run `processes` server processes until SIGTERM/SIGINT (exit 0) or until one dies (exit 1)."""
    if not 2 <= processes <= PROCESSES_MAX:
        raise SystemExit(f"--processes N runs 2 to {PROCESSES_MAX} server processes")
    if config.listen.rsplit(":", 1)[-1] == "0":
        raise SystemExit("--processes > 1 needs a fixed port: the processes share it")

    def announce() -> None:
        print(f"ledger listening on {config.listen} ({processes} processes)", flush=True)

    return supervise("ledger", _serve_one, [(child_config(config, i), grace_s) for i in range(processes)],
                     grace_s, log_level, on_serving=announce)
