"""The server interceptor: authenticate, check the method's scope, rate-limit, before any work.

Bearer keys come from `authorization: Bearer <key>` metadata; with mutual TLS, the client
certificate's subject common name names a certificate caller. The authenticated principal is
available to handlers through `current_principal()`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger_server.access.callers import SYSTEM, CallerDirectory, Principal
from ledger_server.access.rate_limit import RateLimiter
from ledger_server.access.scopes import allows, required_scope
from ledger_server.errors import DOMAIN, LedgerError
from ledger_server.metrics import Metrics

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


class AccessInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, callers: CallerDirectory, limiter: RateLimiter, metrics: Metrics) -> None:
        self._callers = callers
        self._limiter = limiter
        self._metrics = metrics
        self._guarded: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        """Called for every RPC: the guarded handler of a method is built once and reused."""
        method = details.method
        guarded = self._guarded.get(method)
        if guarded is not None:
            return guarded
        handler = continuation(details)
        scope = required_scope(method)
        if handler is None or scope is None:
            return handler
        guarded = self._guard(handler, method, scope)
        if len(self._guarded) < GUARDED_METHODS_MAX:
            self._guarded[method] = guarded
        return guarded

    def _guard(self, handler: Any, method: str, scope: str) -> Any:
        def admit(context: grpc.ServicerContext) -> Principal:
            principal = self._authenticate(context)
            if principal is None:
                self._metrics.auth_refusals.labels("unauthenticated").inc()
                context.abort_with_status(_refuse(
                    grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS", "missing, unknown or revoked credentials"))
                raise AssertionError("abort returned")
            if not allows(principal.scopes, scope):
                self._metrics.auth_refusals.labels("permission_denied").inc()
                context.abort_with_status(_refuse(
                    grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE", f"{method} needs scope {scope}"))
            decision = self._limiter.take(principal.id)
            if not decision.allowed:
                self._metrics.auth_refusals.labels("rate_limited").inc()
                context.abort_with_status(_rate_limited(decision.retry_after_s))
            return principal

        def check_parsed(request: Any, context: grpc.ServicerContext) -> None:
            if isinstance(request, _Malformed):
                context.abort_with_status(_refuse(
                    grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", "the request is not a valid message"))

        if handler.unary_unary is not None:
            unary = handler.unary_unary

            def guarded_unary(request: Any, context: grpc.ServicerContext) -> Any:
                principal = admit(context)
                check_parsed(request, context)
                token = _PRINCIPAL.set(principal)
                try:
                    return unary(request, context)
                finally:
                    _PRINCIPAL.reset(token)

            return grpc.unary_unary_rpc_method_handler(
                guarded_unary, request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=_passthrough(handler.response_serializer))
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            def guarded_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                principal = admit(context)
                check_parsed(request, context)
                token = _PRINCIPAL.set(principal)
                try:
                    yield from stream(request, context)
                finally:
                    _PRINCIPAL.reset(token)

            return grpc.unary_stream_rpc_method_handler(
                guarded_stream, request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        return handler  # the ledger has no client-streaming RPCs

    def _authenticate(self, context: grpc.ServicerContext) -> Principal | None:
        for key, value in context.invocation_metadata():
            if key == "authorization":
                if len(value) > AUTHORIZATION_CHARS_MAX or not value.startswith("Bearer "):
                    return None
                return self._callers.by_token(value[len("Bearer "):].strip())
        subjects = context.auth_context().get("x509_common_name") or []
        if subjects:
            return self._callers.by_certificate(subjects[0].decode())
        return None
