"""The RPC-layer ceiling: the Ledger service with empty handlers, served like the real one.

Same grpcio sync server, same thread pool size and options, same messages (the request is
parsed, an empty response serialized): the load generator drives it with the very code it uses
against the ledger, so the ratio of the two isolates what the ledger does per call.

    python -m benchmarks.echo_server --listen 127.0.0.1:50099 [--aio]

With --aio the same empty service runs on grpc.aio (one event loop, no handler threads): the
data point for deciding whether the ledger's RPC layer should move to asyncio.

With --processes N, N such servers share the port (SO_REUSEPORT), as `ledger-server --processes N`
does: the baseline for a multi-process ledger is a multi-process echo server.

With --handoff-us N (or ECHO_HANDOFF_US=N), CreateTransfer is handed to one "writer" thread, the
way the ledger hands requests to its group committer: the writer takes everything queued, waits N
microseconds without holding the GIL (a database round trip), and answers the batch. The sync
server parks one handler thread per call on a future (one wake-up per call); the aio server
resolves the whole batch with one call_soon_threadsafe. Not a harness baseline: an experiment on
the cost of the hand-off in each model (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from ledger.v1 import ledger_pb2, ledger_pb2_grpc
from ledger_server.process_supervisor import PROCESSES_MAX, ChildContext, supervise
from ledger_server.server import MESSAGE_BYTES_MAX, ServerConfig

QUEUE_MAX = 10_000


class HandoffWriter:
    """One thread answering queued calls in batches, after a pause standing for the database."""

    def __init__(self, pause_us: int) -> None:
        self._pause_s = pause_us / 1e6
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_MAX)
        threading.Thread(target=self._run, name="handoff-writer", daemon=True).start()

    def submit(self, answer: Any) -> None:
        self._queue.put(answer)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            time.sleep(self._pause_s)
            for answer in batch:
                answer()


class EmptyLedger(ledger_pb2_grpc.LedgerServicer):
    def __init__(self, writer: HandoffWriter | None = None) -> None:
        self._writer = writer

    def CreateTransfer(self, request: Any, context: grpc.ServicerContext) -> ledger_pb2.Transfer:
        if self._writer is not None:
            done: futures.Future[None] = futures.Future()
            self._writer.submit(lambda: done.set_result(None))
            done.result(timeout=10)
        return ledger_pb2.Transfer()

    def CreateTransfers(
        self, request: Any, context: grpc.ServicerContext
    ) -> ledger_pb2.CreateTransfersResponse:
        return ledger_pb2.CreateTransfersResponse()

    def PostPendingTransfer(self, request: Any, context: grpc.ServicerContext) -> ledger_pb2.Transfer:
        return ledger_pb2.Transfer()

    def VoidPendingTransfer(self, request: Any, context: grpc.ServicerContext) -> ledger_pb2.Transfer:
        return ledger_pb2.Transfer()


class AsyncEmptyLedger(ledger_pb2_grpc.LedgerServicer):
    def __init__(self, writer: HandoffWriter | None = None) -> None:
        self._writer = writer
        self._ready: list[asyncio.Future[None]] = []
        self._lock = threading.Lock()

    async def CreateTransfer(self, request: Any, context: Any) -> ledger_pb2.Transfer:
        if self._writer is not None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            self._writer.submit(lambda: self._resolve_later(loop, done))
            await done
        return ledger_pb2.Transfer()

    def _resolve_later(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        """Called by the writer per answer: the first of a batch schedules ONE loop wake-up that
        resolves everything collected by then."""
        with self._lock:
            self._ready.append(done)
            first = len(self._ready) == 1
        if first:
            loop.call_soon_threadsafe(self._resolve_all)

    def _resolve_all(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for done in ready:
            if not done.done():
                done.set_result(None)

    async def CreateTransfers(
        self, request: Any, context: Any
    ) -> ledger_pb2.CreateTransfersResponse:
        return ledger_pb2.CreateTransfersResponse()

    async def PostPendingTransfer(self, request: Any, context: Any) -> ledger_pb2.Transfer:
        return ledger_pb2.Transfer()

    async def VoidPendingTransfer(self, request: Any, context: Any) -> ledger_pb2.Transfer:
        return ledger_pb2.Transfer()


async def serve_aio(listen: str, writer: HandoffWriter | None, reuse_port: bool,
                    on_serving: Callable[[], None], stop: threading.Event) -> int:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
        ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
        ("grpc.so_reuseport", int(reuse_port)),
    ])
    ledger_pb2_grpc.add_LedgerServicer_to_server(AsyncEmptyLedger(writer), server)
    if server.add_insecure_port(listen) == 0:
        print(f"cannot listen on {listen}", file=sys.stderr)
        return 1
    await server.start()
    print(f"echo (aio) listening on {listen}", flush=True)
    on_serving()
    await asyncio.to_thread(stop.wait)
    await server.stop(1)
    return 0


def serve_sync(listen: str, writer: HandoffWriter | None, reuse_port: bool,
               on_serving: Callable[[], None], stop: threading.Event) -> int:
    defaults = ServerConfig(listen=listen, database_url="")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=defaults.worker_threads, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=defaults.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
            ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
            ("grpc.so_reuseport", int(reuse_port)),
        ],
    )
    ledger_pb2_grpc.add_LedgerServicer_to_server(EmptyLedger(writer), server)
    if server.add_insecure_port(listen) == 0:
        print(f"cannot listen on {listen}", file=sys.stderr)
        return 1
    server.start()
    print(f"echo listening on {listen}", flush=True)
    on_serving()
    stop.wait()
    server.stop(1).wait()
    return 0


def serve(listen: str, handoff_us: int, aio: bool, reuse_port: bool, on_serving: Callable[[], None],
          stop: threading.Event) -> int:
    writer = HandoffWriter(handoff_us) if handoff_us else None
    if aio:
        return asyncio.run(serve_aio(listen, writer, reuse_port, on_serving, stop))
    return serve_sync(listen, writer, reuse_port, on_serving, stop)


def _serve_one(context: ChildContext, listen: str, handoff_us: int, aio: bool) -> None:
    """One of `--processes N`, supervised like the processes of `ledger-server --processes N`."""
    if serve(listen, handoff_us, aio, True, context.serving, context.stop) != 0:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:50099")
    parser.add_argument("--aio", action="store_true", help="serve with grpc.aio instead of the thread pool")
    parser.add_argument("--handoff-us", type=int, default=int(os.environ.get("ECHO_HANDOFF_US", "0")),
                        help="hand CreateTransfer to a writer thread that pauses this long per batch (0: off)")
    parser.add_argument("--processes", type=int, default=1, help="servers sharing the port")
    args = parser.parse_args(argv)
    assert 0 <= args.handoff_us <= 1_000_000 and 1 <= args.processes <= PROCESSES_MAX
    if args.processes > 1:
        return supervise("echo", _serve_one, [(args.listen, args.handoff_us, args.aio)] * args.processes,
                         grace_s=1.0, log_level="WARNING")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return serve(args.listen, args.handoff_us, args.aio, False, lambda: None, stop)


if __name__ == "__main__":
    sys.exit(main())
