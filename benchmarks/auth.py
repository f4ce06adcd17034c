"""The harness authenticates like any caller: one admin key per run, provisioned at server start
(LEDGER_BOOTSTRAP_ADMIN_KEY) and sent as `authorization: Bearer <key>` by every load process."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Any

import grpc

KEY_ENV = "LEDGER_API_KEY"


def run_key() -> str:
    """The run's key: inherited by spawned load processes through the environment."""
    key = os.environ.get(KEY_ENV)
    if not key:
        key = "bench-" + secrets.token_urlsafe(32)
        os.environ[KEY_ENV] = key
    return key


class _Bearer(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, key: str) -> None:
        self._header = ("authorization", f"Bearer {key}")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return continuation(details._replace(metadata=metadata), request)


def channel(target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    return grpc.intercept_channel(grpc.insecure_channel(target, options=list(options)), _Bearer(run_key()))
