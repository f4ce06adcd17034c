"""The server interceptor: authenticate, check the method's scope, rate-limit, before any work.

Bearer keys come from `authorization: Bearer <key>` metadata; with mutual TLS, the client
certificate's subject common name names a certificate caller. The authenticated principal is
available to handlers through `current_principal()`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger_server.access.callers import NOT_CACHED, SYSTEM, CallerDirectory, NotCached, Principal
from ledger_server.access.rate_limit import RateLimiter
from ledger_server.access.scopes import allows, required_scope
from ledger_server.errors import DOMAIN, LedgerError
from ledger_server.metrics import Metrics
from ledger_server.thread_handlers import in_threads

log = logging.getLogger(__name__)
_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=SYSTEM)
AUTHORIZATION_CHARS_MAX = 512
GUARDED_METHODS_MAX = 256  # methods are a fixed set; the bound only guards against surprises


class _Malformed:
    """Stands in for a request whose bytes did not parse, so the caller gets INVALID_ARGUMENT."""


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError and friends: any unparseable input
            return _Malformed()

    return parse


def _passthrough(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """Responses a handler already holds serialized (a committed outcome is stored as the response's
    bytes) go out as they are, without being parsed and serialized again."""
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        return response if type(response) is bytes else serializer(response)

    return serialize


def current_principal() -> Principal:
    return _PRINCIPAL.get()


def _refuse(code: grpc.StatusCode, reason: str, message: str) -> grpc.Status:
    return LedgerError(code, reason, message).to_status()


def _rate_limited(retry_after_s: float) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason="RATE_LIMITED", domain=DOMAIN,
                                       metadata={"retry_after_ms": str(int(retry_after_s * 1000))})
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(1, int(retry_after_s * 1000)))
    details = []
    for message in (info, error_details_pb2.RetryInfo(retry_delay=delay)):
        packed = any_pb2.Any()
        packed.Pack(message)
        details.append(packed)
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
                               message="rate limit exceeded; retry after the given delay", details=details)
    return rpc_status.to_status(status)


@dataclass(frozen=True)
class _Refusal:
    reason: str  # the auth_refusals metric's label
    status: grpc.Status


Admission = Principal | _Refusal


class AccessInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Guards every method that has a scope, on the server's event loop. Admission needs no I/O when
    the caller's key is cached and its rate-limit lease covers the call (nearly always); otherwise it
    runs in a worker thread, so a slow database or Redis never stalls the loop. Blocking handlers
    are turned into thread-run ones here too (thread_handlers.py), every method alike."""

    def __init__(self, callers: CallerDirectory, limiter: RateLimiter, metrics: Metrics, executor: Executor) -> None:
        self._callers = callers
        self._limiter = limiter
        self._metrics = metrics
        self._executor = executor
        self._guarded: dict[str, Any] = {}

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        """Called for every RPC: the guarded handler of a method is built once and reused."""
        method = details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = await continuation(details)
        if handler is None:
            return None
        handler = in_threads(handler, self._executor)
        scope = required_scope(method)
        guarded = handler if scope is None else self._guard(handler, method, scope)
        if len(self._guarded) < GUARDED_METHODS_MAX:
            self._guarded[method] = guarded
        return guarded

    def _admit(self, context: Any, method: str, scope: str, wait: bool) -> Admission | None:
        """The caller, or why it is refused; None when finding out needs I/O and `wait` is false."""
        principal = self._authenticate(context, wait)
        if principal is NOT_CACHED:
            return None
        if principal is None:
            return _Refusal("unauthenticated", _refuse(
                grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS", "missing, unknown or revoked credentials"))
        assert isinstance(principal, Principal)
        if not allows(principal.scopes, scope):
            return _Refusal("permission_denied", _refuse(
                grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE", f"{method} needs scope {scope}"))
        decision = self._limiter.take(principal.id) if wait else self._limiter.take_nowait(principal.id)
        if decision is None:
            return None
        if not decision.allowed:
            return _Refusal("rate_limited", _rate_limited(decision.retry_after_s))
        return principal

    async def _admitted(self, request: Any, context: grpc.aio.ServicerContext, method: str, scope: str) -> Principal:
        admission = self._admit(context, method, scope, wait=False)
        if admission is None:
            admission = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._admit, context, method, scope, True)
        assert admission is not None
        if isinstance(admission, _Refusal):
            self._metrics.auth_refusals.labels(admission.reason).inc()
            await context.abort_with_status(admission.status)
            raise AssertionError("abort returned")
        if isinstance(request, _Malformed):
            await context.abort_with_status(_refuse(
                grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", "the request is not a valid message"))
        # Each call runs in its own asyncio task, with its own copy of the context variables: the
        # principal set here is seen by this call only (and copied into its worker thread, if any).
        _PRINCIPAL.set(admission)
        return admission

    def _guard(self, handler: Any, method: str, scope: str) -> Any:
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def guarded_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await self._admitted(request, context, method, scope)
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                guarded_unary, request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=_passthrough(handler.response_serializer))
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def guarded_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                await self._admitted(request, context, method, scope)
                async for response in stream(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                guarded_stream, request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        return handler  # the ledger has no client-streaming RPCs

    def _authenticate(self, context: Any, wait: bool) -> Principal | NotCached | None:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                if len(value) > AUTHORIZATION_CHARS_MAX or not value.startswith("Bearer "):
                    return None
                return self._callers.by_token(value[len("Bearer "):].strip(), wait)
        subjects = context.auth_context().get("x509_common_name") or []
        if subjects:
            return self._callers.by_certificate(subjects[0].decode(), wait)
        return None
