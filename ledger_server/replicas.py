"""Several ledger server processes on one host, sharing one gRPC port (`ledger-server --processes N`).

Why: one Python process's interpreter lock serialises its gRPC handlers (its writer runs in a
process of its own, writer_process.py), so their work cannot use more than about one core however
many are free. N processes are N replicas of the ledger's front (RPC, access checks, validation,
reads). By default they share ONE group-commit writer, elected in a private directory this parent
makes (writer_process.py): one writer commits larger batches and remembers every account it writes
(the warm path), where N writers on the same accounts would invalidate each other's memory. With
`--no-shared-writer` each has its own writer, exactly as if they ran on N hosts. Either way the
correctness across writers is the one replicas already rely on (advisory locks per account taken
before the batch reads, the write guard, dedupe rows in PostgreSQL). The kernel spreads incoming
connections over the processes (SO_REUSEPORT), so a client needs several connections (or a balancer
in front) to reach all of them. Supervision: process_supervisor.py.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace

from ledger_server.gc_pauses import freeze_startup_heap
from ledger_server.process_supervisor import PROCESSES_MAX, ChildContext, supervise
from ledger_server.server import LedgerServer, ServerConfig


def child_config(config: ServerConfig, index: int, writer_socket_dir: str | None = None) -> ServerConfig:
    """Child `index`'s configuration: the shared port, its own metrics port (base + index), the
    shared writer's directory (if any), and the webhook dispatcher in child 0 only (one dispatcher
    per host is enough; more would only compete for the same rows, which their leases already make
    safe)."""
    metrics = config.metrics_listen
    if metrics:
        host, _, port = metrics.rpartition(":")
        metrics = f"{host}:{int(port) + index}"
    events = config.events if index == 0 else replace(config.events, webhooks=None)
    return replace(config, reuse_port=True, metrics_listen=metrics, events=events,
                   writer_socket_dir=writer_socket_dir)


def _serve_one(context: ChildContext, config: ServerConfig, grace_s: float) -> None:
    server = LedgerServer(config).start()
    freeze_startup_heap()
    context.serving()
    context.stop.wait()
    server.stop(grace_s)


def serve(config: ServerConfig, processes: int, grace_s: float, log_level: str, shared_writer: bool = True) -> int:
    """Run `processes` server processes until SIGTERM/SIGINT (exit 0) or until one dies (exit 1);
    with `shared_writer` (and a writer process), one writer serves them all."""
    if not 2 <= processes <= PROCESSES_MAX:
        raise SystemExit(f"--processes N runs 2 to {PROCESSES_MAX} server processes")
    if config.listen.rsplit(":", 1)[-1] == "0":
        raise SystemExit("--processes > 1 needs a fixed port: the processes share it")

    def announce() -> None:
        print(f"ledger listening on {config.listen} ({processes} processes)", flush=True)

    # Private to this user (mkdtemp: mode 0700): whoever may connect to the writer's socket may post.
    socket_dir = tempfile.mkdtemp(prefix="ledger-writer-") if shared_writer and config.writer_process else None
    try:
        children = [(child_config(config, i, socket_dir), grace_s) for i in range(processes)]
        return supervise("ledger", _serve_one, children, grace_s, log_level, on_serving=announce)
    finally:
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)
