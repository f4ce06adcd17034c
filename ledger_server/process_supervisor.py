"""Runs N copies of a server as spawned child processes and supervises them, for the services that
scale past one Python interpreter on one host (`ledger-server --processes N`,
`ledger-card-gateway serve --processes N`).

The parent only supervises: it starts the children one at a time (each reports when it serves),
forwards SIGTERM and SIGINT, and returns 1 as soon as any child dies unexpectedly, after stopping
the others, so the orchestrator restarts the whole unit rather than it running silently short of
capacity. A child whose parent is killed (even with SIGKILL) is sent SIGTERM by the kernel.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

PROCESSES_MAX = 32
START_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1


class ChildContext:
    """What a child gets besides its own arguments: its stop signal, and how to say it serves."""

    def __init__(self, ready: multiprocessing.connection.Connection, parent_pid: int) -> None:
        self._ready = ready
        self.stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
        _die_with_parent()
        if os.getppid() != parent_pid:  # the parent died before the death signal was armed
            self.stop.set()

    def serving(self) -> None:
        self._ready.send(True)
        self._ready.close()


def _die_with_parent() -> None:
    """Linux: deliver SIGTERM to this process when the parent dies, whatever killed it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's SIGTERM forwarding still works
        return


def _start(target: Callable[..., None], args: tuple[Any, ...], ready: multiprocessing.connection.Connection,
           parent_pid: int, log_level: str) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
    context = ChildContext(ready, parent_pid)
    if not context.stop.is_set():
        target(context, *args)


def supervise(name: str, target: Callable[..., None], child_args: Sequence[tuple[Any, ...]], grace_s: float,
              log_level: str = "INFO", on_serving: Callable[[], None] | None = None) -> int:
    """Run `target(ChildContext, *args)` in one spawned process per `child_args` entry, until
    SIGTERM/SIGINT (returns 0) or until one dies (returns 1). `target` must be importable (spawn)
    and call `context.serving()` once it serves, then return when `context.stop` is set;
    `on_serving` runs in the parent once all of them serve."""
    assert 1 <= len(child_args) <= PROCESSES_MAX, f"1..{PROCESSES_MAX} processes"
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    children: list[multiprocessing.process.BaseProcess] = []
    try:
        for index, args in enumerate(child_args):
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_start, name=f"{name}-{index}",
                                    args=(target, args, send, os.getpid(), log_level))
            child.start()
            send.close()
            children.append(child)
            if not receive.poll(START_TIMEOUT_S):
                raise RuntimeError(f"{name} process {index} did not start")
            receive.recv()
        if on_serving is not None:
            on_serving()
        sentinels = {child.sentinel: child for child in children}
        while not stop.is_set():
            died = multiprocessing.connection.wait(list(sentinels), timeout=0.5)
            if died:
                names = ", ".join(f"{sentinels[s].name} (exit {sentinels[s].exitcode})" for s in died)  # type: ignore[index]
                log.error("%s process died: %s; stopping the others", name, names)
                return 1
        log.info("signal received: draining %d %s processes", len(children), name)
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
