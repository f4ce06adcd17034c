"""The RPC-layer ceiling: the Ledger service with empty handlers, served like the real one.

Same grpcio sync server, same thread pool size and options, same messages (the request is
parsed, an empty response serialized): the load generator drives it with the very code it uses
against the ledger, so the ratio of the two isolates what the ledger does per call.

    python -m benchmarks.echo_server --listen 127.0.0.1:50099 [--aio]

With --aio the same empty service runs on grpc.aio (one event loop, no handler threads): the
data point for deciding whether the ledger's RPC layer should move to asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from concurrent import futures
from typing import Any

import grpc

from ledger.v1 import ledger_pb2, ledger_pb2_grpc
from ledger_server.server import MESSAGE_BYTES_MAX, ServerConfig


class EmptyLedger(ledger_pb2_grpc.LedgerServicer):
    def CreateTransfer(self, request: Any, context: grpc.ServicerContext) -> ledger_pb2.Transfer:
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
    async def CreateTransfer(self, request: Any, context: Any) -> ledger_pb2.Transfer:
        return ledger_pb2.Transfer()

    async def CreateTransfers(
        self, request: Any, context: Any
    ) -> ledger_pb2.CreateTransfersResponse:
        return ledger_pb2.CreateTransfersResponse()

    async def PostPendingTransfer(self, request: Any, context: Any) -> ledger_pb2.Transfer:
        return ledger_pb2.Transfer()

    async def VoidPendingTransfer(self, request: Any, context: Any) -> ledger_pb2.Transfer:
        return ledger_pb2.Transfer()


async def serve_aio(listen: str) -> int:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
        ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
        ("grpc.so_reuseport", 0),
    ])
    ledger_pb2_grpc.add_LedgerServicer_to_server(AsyncEmptyLedger(), server)
    if server.add_insecure_port(listen) == 0:
        print(f"cannot listen on {listen}", file=sys.stderr)
        return 1
    await server.start()
    print(f"echo (aio) listening on {listen}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:50099")
    parser.add_argument("--aio", action="store_true", help="serve with grpc.aio instead of the thread pool")
    args = parser.parse_args(argv)
    if args.aio:
        return asyncio.run(serve_aio(args.listen))
    defaults = ServerConfig(listen=args.listen, database_url="")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=defaults.worker_threads, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=defaults.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
            ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
            ("grpc.so_reuseport", 0),
        ],
    )
    ledger_pb2_grpc.add_LedgerServicer_to_server(EmptyLedger(), server)
    if server.add_insecure_port(args.listen) == 0:
        print(f"cannot listen on {args.listen}", file=sys.stderr)
        return 1
    server.start()
    print(f"echo listening on {args.listen}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
