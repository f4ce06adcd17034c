"""Blocking handlers under the asyncio gRPC server: each call runs in a worker thread.

The server's event loop serves every call; the handlers on the money path (the mutations, which only
validate and then wait for the group-commit writer) are coroutines and never leave it. Every other
handler (reads over the connection pool, admin, chain, webhooks, the WatchEvents stream) stays a
plain blocking function and runs here, in a bounded thread pool, with the caller's context variables
(the authenticated principal) copied in. What such a handler sees as its servicer context is a
`ThreadContext`: the subset of `grpc.ServicerContext` the ledger's handlers use, safe to call from
the worker thread. grpc.aio's own fallback for blocking handlers has no `abort_with_status`, which
is how every ledger handler answers a rich error; hence this module.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

import grpc

CALLBACKS_MAX = 16  # a handler registers one or two; the bound only guards against surprises


class AbortInThreadError(Exception):
    """Raised in the worker thread by `ThreadContext.abort*`; the loop side sends the status."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


class _Status(grpc.Status):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: Sequence[tuple[str, str]]) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata)


class ThreadContext:
    """The servicer context of a blocking handler. Reads of the call's metadata, deadline and peer go
    to the asyncio context directly (grpc.aio does the same for its own fallback); an abort raises
    in the thread and is sent from the loop; `is_active` turns false, and the callbacks run, as soon
    as the call ends on the loop's side (cancelled, timed out or answered)."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._ended = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- what the handlers call -------------------------------------------------------------------

    def abort_with_status(self, status: grpc.Status) -> None:
        raise AbortInThreadError(status)

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise AbortInThreadError(_Status(code, details, ()))

    def invocation_metadata(self) -> Sequence[tuple[str, Any]]:
        return tuple(self._context.invocation_metadata() or ())

    def auth_context(self) -> dict[str, list[bytes]]:
        return dict(self._context.auth_context())

    def peer(self) -> str:
        return str(self._context.peer())

    def time_remaining(self) -> float | None:
        remaining: float | None = self._context.time_remaining()
        return remaining

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._context.set_trailing_metadata(tuple(metadata))

    def set_code(self, code: grpc.StatusCode) -> None:
        self._context.set_code(code)

    def set_details(self, details: str) -> None:
        self._context.set_details(details)

    def is_active(self) -> bool:
        return not self._ended.is_set()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self._ended.is_set() or len(self._callbacks) >= CALLBACKS_MAX:
                return False
            self._callbacks.append(callback)
        return True

    # -- what the loop side calls -----------------------------------------------------------------

    def end(self) -> None:
        """The call is over on the loop's side: the handler's waits should stop."""
        with self._lock:
            if self._ended.is_set():
                return
            self._ended.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


_END = object()


def _unary(behavior: Callable[[Any, Any], Any], executor: Executor) -> Callable[[Any, Any], Any]:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        local = ThreadContext(context)
        run = contextvars.copy_context().run
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, run, behavior, request, local)
        except AbortInThreadError as aborted:
            await context.abort_with_status(aborted.status)
        finally:
            local.end()

    return unary


def _stream(behavior: Callable[[Any, Any], Iterator[Any]], executor: Executor) -> Callable[[Any, Any], Any]:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        local = ThreadContext(context)
        run = contextvars.copy_context().run
        responses = iter(run(behavior, request, local))  # a generator: nothing of its body runs yet
        pending: asyncio.Future[Any] | None = None

        def step() -> Any:
            return next(responses, _END)

        try:
            while True:
                pending = loop.run_in_executor(executor, run, step)
                item = await pending
                if item is _END:
                    return
                yield item
        except AbortInThreadError as aborted:
            await context.abort_with_status(aborted.status)
        finally:
            # Stop the handler's waits, then close its generator (its `finally` blocks release what
            # it holds) in a worker thread, after the step still running there, if any, returns.
            local.end()
            close: Callable[[], object] = getattr(responses, "close", lambda: None)

            def closed(_: object = None) -> None:
                executor.submit(run, close)

            if pending is not None and not pending.done():
                pending.add_done_callback(closed)
            else:
                closed()

    return stream


def in_threads(handler: grpc.RpcMethodHandler, executor: Executor) -> grpc.RpcMethodHandler:
    """The same method handler, its blocking behavior (if any) run in `executor`'s threads."""
    if handler.unary_unary is not None and not inspect.iscoroutinefunction(handler.unary_unary):
        return grpc.unary_unary_rpc_method_handler(
            _unary(handler.unary_unary, executor), request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
    if handler.unary_stream is not None and not inspect.isasyncgenfunction(handler.unary_stream):
        return grpc.unary_stream_rpc_method_handler(
            _stream(handler.unary_stream, executor), request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
    streaming = handler.stream_unary or handler.stream_stream  # reflection's, on the loop already
    assert streaming is None or inspect.iscoroutinefunction(streaming) or inspect.isasyncgenfunction(streaming), \
        "the ledger has no blocking client-streaming handlers"
    return handler
