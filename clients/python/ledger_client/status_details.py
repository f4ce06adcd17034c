"""Read a failed call's rich status: code, message, google.rpc.ErrorInfo and RetryInfo.

Works for both grpc.RpcError (sync) and grpc.aio.AioRpcError: both expose code(), details() and
trailing_metadata(), and the server puts the google.rpc.Status in `grpc-status-details-bin`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from ledger_client.errors import DOMAIN, LedgerError, build_error

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _details(trailing: Iterable[Any] | None) -> status_pb2.Status | None:
    for item in trailing or ():
        key, value = item[0], item[1]
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def error_from_rpc(
    rpc_error: Any, *, request_id: str | None = None, attempts: int = 1
) -> LedgerError:
    """The typed LedgerError for a failed gRPC call."""
    code = rpc_error.code()
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    message = rpc_error.details() or ""
    reason = ""
    metadata: dict[str, str] = {}
    retry_delay_s: float | None = None
    status = _details(rpc_error.trailing_metadata())
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain == DOMAIN:
                    reason = info.reason
                    metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_delay_s = max(0.0, retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9)
    return build_error(
        code, reason, message, metadata, request_id=request_id, attempts=attempts, retry_delay_s=retry_delay_s
    )


def was_replayed(trailing: Iterable[Any] | None) -> bool:
    """Whether the server answered from its stored outcome (trailing `ledger-replayed: true`)."""
    return any(item[0] == "ledger-replayed" and item[1] == "true" for item in trailing or ())
