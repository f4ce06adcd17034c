"""Blocking handlers under the asyncio server (ledger_server/thread_handlers.py), on a real grpc.aio
server: a rich abort from the worker thread reaches the client, trailing metadata and the caller's
context variables cross over, and a stream the client cancels stops waiting and is closed."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger_server.errors import LedgerError
from ledger_server.thread_handlers import ThreadContext, in_threads

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")


class _Stream:
    """What the blocking stream saw, for the test to look at."""

    def __init__(self) -> None:
        self.sent = 0
        self.callback_ran = threading.Event()
        self.closed = threading.Event()


def _unary(request: bytes, context: ThreadContext) -> bytes:
    context.set_trailing_metadata((("handled-by", threading.current_thread().name),))
    if request == b"refuse":
        context.abort_with_status(LedgerError(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS",
                                              "not enough").to_status())
    return CALLER.get().encode()


def _streamer(seen: _Stream) -> Any:
    def stream(request: bytes, context: ThreadContext) -> Iterator[bytes]:
        context.add_callback(seen.callback_ran.set)
        try:
            while context.is_active():
                seen.sent += 1
                yield b"event"
                time.sleep(0.01)
        finally:
            seen.closed.set()

    return stream


class _Server:
    def __init__(self, seen: _Stream) -> None:
        self.executor = ThreadPoolExecutor(4, thread_name_prefix="worker")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        unary = in_threads(grpc.unary_unary_rpc_method_handler(_unary), self.executor).unary_unary
        stream = in_threads(grpc.unary_stream_rpc_method_handler(_streamer(seen)), self.executor)

        async def as_caller(request: bytes, context: Any) -> bytes:  # what the access interceptor does
            CALLER.set("caller-7")
            answer: bytes = await unary(request, context)
            return answer

        async def start() -> grpc.aio.Server:
            server = grpc.aio.server()
            server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.T", {
                "Unary": grpc.unary_unary_rpc_method_handler(as_caller), "Stream": stream})])
            self.port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.executor.shutdown()


@pytest.fixture
def served() -> Iterator[tuple[_Server, _Stream, grpc.Channel]]:
    seen = _Stream()
    server = _Server(seen)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield server, seen, channel
    finally:
        channel.close()
        server.stop()


def test_a_blocking_handler_runs_in_a_worker_thread_with_the_callers_context(
    served: tuple[_Server, _Stream, grpc.Channel],
) -> None:
    _, _, channel = served
    answer, call = channel.unary_unary("/test.T/Unary").with_call(b"hello", timeout=5)
    assert answer == b"caller-7"  # the context variable set on the loop, read in the thread
    assert dict(call.trailing_metadata())["handled-by"].startswith("worker")


def test_a_rich_abort_in_the_worker_thread_reaches_the_client(
    served: tuple[_Server, _Stream, grpc.Channel],
) -> None:
    _, _, channel = served
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary("/test.T/Unary")(b"refuse", timeout=5)
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(error)
    assert isinstance(status, status_pb2.Status)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == "INSUFFICIENT_FUNDS"


def test_a_cancelled_stream_stops_waiting_and_is_closed(served: tuple[_Server, _Stream, grpc.Channel]) -> None:
    _, seen, channel = served
    call: Any = channel.unary_stream("/test.T/Stream")(b"", timeout=30)
    assert [next(call) for _ in range(3)] == [b"event"] * 3
    call.cancel()
    # The handler's loop sees is_active() turn false, its callback ran, and its generator was closed
    # (its finally ran): a stream never keeps a worker thread after its client has gone.
    assert seen.callback_ran.wait(5)
    assert seen.closed.wait(5)
    sent = seen.sent
    time.sleep(0.1)
    assert seen.sent == sent
