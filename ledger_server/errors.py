"""Ledger errors: a gRPC status code plus a machine-readable reason (ledger.v1.ErrorReason)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger.v1 import ledger_pb2

DOMAIN = "ledger.v1"


class LedgerError(Exception):
    """A refusal with a documented reason. Business rejections are final and stored per request id.

    A plain exception class (not a frozen dataclass): Python sets __traceback__ on exceptions that
    pass through context managers, which a frozen instance would refuse.
    """

    def __init__(
        self, code: grpc.StatusCode, reason: str, message: str, metadata: dict[str, str] | None = None
    ) -> None:
        assert ledger_pb2.ErrorReason.Value(reason) > 0, reason
        super().__init__(code, reason, message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    @property
    def is_final(self) -> bool:
        """Final outcomes are remembered under the request id; transient ones are not."""
        return self.code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)

    def to_proto(self) -> ledger_pb2.Error:
        return ledger_pb2.Error(
            code=self.code.value[0], reason=self.reason, message=self.message, metadata=self.metadata
        )

    @classmethod
    def from_proto(cls, error: ledger_pb2.Error) -> LedgerError:
        return cls(_CODES[error.code], error.reason, error.message, dict(error.metadata))

    def to_status(self) -> grpc.Status:
        """A rich gRPC status: code, message and a google.rpc.ErrorInfo detail."""
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        detail = any_pb2.Any()
        detail.Pack(info)
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return rpc_status.to_status(status)


_CODES = {code.value[0]: code for code in grpc.StatusCode}
assert _CODES[code_pb2.FAILED_PRECONDITION] is grpc.StatusCode.FAILED_PRECONDITION


def invalid(reason: str, message: str, **metadata: str) -> LedgerError:
    return LedgerError(grpc.StatusCode.INVALID_ARGUMENT, reason, message, metadata)


def rejected(reason: str, message: str, **metadata: str) -> LedgerError:
    return LedgerError(grpc.StatusCode.FAILED_PRECONDITION, reason, message, metadata)


def not_found(message: str, **metadata: str) -> LedgerError:
    return LedgerError(grpc.StatusCode.NOT_FOUND, "NOT_FOUND", message, metadata)


def idempotency_key_reused(request_id: str, operation: str) -> LedgerError:
    return LedgerError(
        grpc.StatusCode.ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
        "request_id was already used with a different payload",
        {"request_id": request_id, "original_operation": operation},
    )


def transient(code: grpc.StatusCode, reason: str, message: str) -> LedgerError:
    return LedgerError(code, reason, message)
