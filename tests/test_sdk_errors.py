"""One exception class per ErrorReason in the proto, all under LedgerError, found by reason or code."""

from __future__ import annotations

import grpc
import pytest

from ledger.v1 import ledger_pb2 as pb
from ledger_client import errors, results


def test_every_documented_reason_has_exactly_one_class() -> None:
    reasons = set(pb.ErrorReason.keys()) - {"ERROR_REASON_UNSPECIFIED"}
    assert set(errors.BY_REASON) == reasons
    for reason, cls in errors.BY_REASON.items():
        assert issubclass(cls, errors.LedgerError) and reason == cls.REASON
        camel = "".join(part.capitalize() for part in reason.split("_"))
        assert cls.__name__ == camel, (reason, cls.__name__)


@pytest.mark.parametrize(
    ("reason", "family"),
    [
        ("INVALID_AMOUNT", errors.InvalidRequest),
        ("INSUFFICIENT_FUNDS", errors.Rejected),
        ("PENDING_EXPIRED", errors.Rejected),
        ("OVERLOADED", errors.Transient),
        ("TIMEOUT", errors.Transient),
        ("WRITER_RESTARTED", errors.Transient),
        ("ACCOUNT_NOT_FOUND", errors.NotFound),
        ("ACCOUNT_NOT_FOUND", errors.Rejected),
    ],
)
def test_classes_group_by_what_to_do_next(reason: str, family: type[errors.LedgerError]) -> None:
    assert issubclass(errors.BY_REASON[reason], family)


def test_statuses_without_a_known_reason_map_by_code() -> None:
    cases = {
        grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
        grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
        grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidRequest,
        grpc.StatusCode.UNKNOWN: errors.UnexpectedStatus,
        grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
        grpc.StatusCode.CANCELLED: errors.Cancelled,
    }
    for code, cls in cases.items():
        error = errors.build_error(code, "", "m")
        assert type(error) is cls and error.reason == "" and error.code == code
    future = errors.build_error(grpc.StatusCode.FAILED_PRECONDITION, "SOME_FUTURE_REASON", "m", {"k": "v"})
    assert (
        type(future) is errors.Rejected
        and future.reason == "SOME_FUTURE_REASON"
        and future.metadata == {"k": "v"}
    )


def test_errors_carry_reason_code_and_metadata() -> None:
    error = errors.build_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
        "debits would exceed credits",
        {"account_id": "a"},
        request_id="r-1",
        attempts=2,
    )
    assert isinstance(error, errors.InsufficientFunds)
    assert (error.reason, error.code, error.metadata, error.request_id, error.attempts) == (
        "INSUFFICIENT_FUNDS",
        grpc.StatusCode.FAILED_PRECONDITION,
        {"account_id": "a"},
        "r-1",
        2,
    )
    assert str(error) == "INSUFFICIENT_FUNDS: debits would exceed credits"


def test_result_enums_mirror_the_proto() -> None:
    for enum_cls, proto_enum in (
        (results.TransferState, pb.TransferState),
        (results.TransferKind, pb.TransferKind),
        (results.Side, pb.Side),
    ):
        assert {m.value for m in enum_cls} == set(proto_enum.keys())
