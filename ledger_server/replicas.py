"""Several server processes on one host, sharing one gRPC port (`ledger-server --processes N`).

Why: one Python process's interpreter lock serialises its gRPC handlers and its single writer, so
one process cannot use more than about one core however many are free. N processes are N
replicas of the ledger, exactly as if they ran on N hosts: each has its own writer and group
commit, and the correctness across them is the one replicas already rely on (advisory locks
per account, SERIALIZABLE transactions, the write guard, dedupe rows in PostgreSQL). The kernel
spreads incoming connections over the processes (SO_REUSEPORT), so a client needs several
connections (or a balancer in front) to reach all of them.

The parent only supervises: it applies migrations once, starts the children, forwards SIGTERM,
and exits non-zero as soon as any child dies unexpectedly (after stopping the others), so the
orchestrator restarts the whole unit rather than running silently short of capacity. A child
whose parent is killed (even with SIGKILL) is sent SIGTERM by the kernel and drains.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from dataclasses import replace

from ledger_server.server import LedgerServer, ServerConfig

log = logging.getLogger(__name__)

PROCESSES_MAX = 32
START_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1


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


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to this process when the parent dies, whatever killed it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's SIGTERM forwarding still works
        return


def _child(config: ServerConfig, grace_s: float, log_level: str, ready: multiprocessing.connection.Connection,
           parent_pid: int) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    _die_with_parent()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        return
    server = LedgerServer(config).start()
    ready.send(server.port)
    ready.close()
    stop.wait()
    server.stop(grace_s)


def serve(config: ServerConfig, processes: int, grace_s: float, log_level: str) -> int:
    """Run `processes` children until SIGTERM/SIGINT (exit 0) or until one dies (exit 1)."""
    assert 2 <= processes <= PROCESSES_MAX, f"--processes must be 2..{PROCESSES_MAX}"
    if config.listen.rsplit(":", 1)[-1] == "0":
        raise SystemExit("--processes > 1 needs a fixed port: the processes share it")
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    children: list[multiprocessing.process.BaseProcess] = []
    try:
        for index in range(processes):
            receive, send = context.Pipe(duplex=False)
            child = context.Process(
                target=_child, name=f"ledger-{index}",
                args=(child_config(config, index), grace_s, log_level, send, os.getpid()),
            )
            child.start()
            send.close()
            children.append(child)
            if not receive.poll(START_TIMEOUT_S):
                raise RuntimeError(f"server process {index} did not start")
            receive.recv()
        print(f"ledger listening on {config.listen} ({processes} processes)", flush=True)
        sentinels = {child.sentinel: child for child in children}
        while not stop.is_set():
            died = multiprocessing.connection.wait(list(sentinels), timeout=0.5)
            if died:
                names = ", ".join(f"{sentinels[s].name} (exit {sentinels[s].exitcode})" for s in died)  # type: ignore[index]
                log.error("server process died: %s; stopping the others", names)
                return 1
        log.info("signal received: draining %d processes", processes)
        return 0
    except (RuntimeError, EOFError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        for proc in children:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in children:
            proc.join(grace_s + 5)
            if proc.is_alive():
                proc.kill()
                proc.join()
