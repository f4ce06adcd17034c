"""The decorator every RPC handler wears: LedgerError -> rich status, per-method metrics."""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from ledger_server.errors import LedgerError, invalid

Handler = Callable[[Any, Any, grpc.ServicerContext], Any]


def metered(metrics_attribute: str) -> Callable[[Handler], Handler]:
    """The decorator, for a servicer keeping its `Metrics` under another attribute name."""

    def decorate(handler: Handler) -> Handler:
        method = handler.__name__

        @functools.wraps(handler)
        def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                return handler(self, request, context)
            except LedgerError as error:
                code = error.code.name
                context.abort_with_status(error.to_status())
            except Exception:
                code = "INTERNAL"
                raise
            finally:
                metrics = getattr(self, metrics_attribute)
                metrics.rpc_total.labels(method, code).inc()
                metrics.rpc_seconds.labels(method, code).observe(time.perf_counter() - started)

        return wrapper

    return decorate


rpc = metered("metrics")
"""Turn LedgerError into a rich status and record latency and outcome per method."""


def to_datetime(stamp: timestamp_pb2.Timestamp, field: str) -> dt.datetime:
    try:
        return stamp.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError):
        raise invalid("INVALID_TIME_RANGE", f"{field} is not a valid timestamp", field=field) from None
