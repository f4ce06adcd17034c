"""The only place the chain daemons talk to the ledger (to be swapped for the ledger_client SDK).

Every call carries a request id the caller derives from what it stands for (a deposit, a
withdrawal), never a random one, so a retry, a restart or a second process replays instead of
writing twice. Transient codes are retried a bounded number of times with the same request id;
a final refusal comes back as LedgerRejectedError with its ErrorInfo reason.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from ledger.v1 import ledger_pb2, ledger_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
})
CALL_TIMEOUT_S = 15.0
ATTEMPTS_MAX = 6
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 2.0


class LedgerRejectedError(Exception):
    """A final answer of the ledger (FAILED_PRECONDITION, NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT)."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{code.name} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


class LedgerUnavailableError(Exception):
    """The ledger kept answering with transient codes: try again later, with the same request id."""


def _reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason)
    return ""


class LedgerGateway:
    def __init__(self, target: str, api_key: str | None = None, attempts_max: int = ATTEMPTS_MAX) -> None:
        assert attempts_max >= 1
        self._channel = grpc.insecure_channel(target)
        self._stub = ledger_pb2_grpc.LedgerStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self._attempts_max = attempts_max
        self.on_transient: Callable[[str, grpc.StatusCode], None] = lambda method, code: None

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any) -> Any:
        rpc = getattr(self._stub, method)
        for attempt in range(self._attempts_max):
            try:
                return rpc(request, timeout=CALL_TIMEOUT_S, metadata=self._metadata)
            except grpc.RpcError as error:
                code = error.code()
                if code not in TRANSIENT:
                    raise LedgerRejectedError(code, _reason(error), error.details() or "") from None
                self.on_transient(method, code)
                log.warning("ledger %s: %s (attempt %d of %d)", method, code.name, attempt + 1, self._attempts_max)
                if attempt + 1 < self._attempts_max:
                    time.sleep(random.uniform(0.5, 1.0) * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))
        raise LedgerUnavailableError(f"ledger {method} kept failing with transient errors")

    def create_transfer(self, request: ledger_pb2.CreateTransferRequest) -> ledger_pb2.Transfer:
        result: ledger_pb2.Transfer = self._call("CreateTransfer", request)
        return result

    def reverse_transfer(self, request: ledger_pb2.ReverseTransferRequest) -> ledger_pb2.Transfer:
        result: ledger_pb2.Transfer = self._call("ReverseTransfer", request)
        return result

    def post_pending(self, request: ledger_pb2.PostPendingTransferRequest) -> ledger_pb2.Transfer:
        result: ledger_pb2.Transfer = self._call("PostPendingTransfer", request)
        return result

    def void_pending(self, request: ledger_pb2.VoidPendingTransferRequest) -> ledger_pb2.Transfer:
        result: ledger_pb2.Transfer = self._call("VoidPendingTransfer", request)
        return result

    def transfer_by_request_id(self, request_id: str) -> ledger_pb2.Transfer:
        result: ledger_pb2.Transfer = self._call("GetTransfer", ledger_pb2.GetTransferRequest(request_id=request_id))
        return result

    def account(self, account_id: str) -> ledger_pb2.Account:
        result: ledger_pb2.Account = self._call("GetAccount", ledger_pb2.GetAccountRequest(id=account_id))
        return result
