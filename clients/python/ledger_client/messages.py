"""Keyword arguments -> ledger.v1 request messages, shared by the sync and async clients.

Amounts arrive here already converted to int minor units (the clients look up scales, which is
I/O); everything else is checked and filled in here: request ids are validated or generated (once
per logical call: the message is then resent unchanged on every retry), timestamps converted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import timestamp_pb2

from ledger.v1 import admin_pb2
from ledger.v1 import ledger_pb2 as pb
from ledger_client.errors import InvalidRequestId, MissingField
from ledger_client.money import to_minor_units
from ledger_client.request_ids import is_valid_request_id, new_request_id
from ledger_client.results import AdjustPending, NewTransfer, Operation, PostPending, Reverse, VoidPending


def request_id_or_new(value: str | None, field: str = "request_id") -> str:
    """The caller's request id (validated), or a fresh UUIDv7."""
    if value is None:
        return new_request_id()
    if not isinstance(value, str) or not is_valid_request_id(value):
        raise InvalidRequestId(
            f"{field} must be 1..255 printable ASCII characters without spaces",
            code=grpc.StatusCode.INVALID_ARGUMENT, metadata={"field": field, "source": "client"},
        )
    return value


def timestamp(value: dt.datetime, field: str) -> timestamp_pb2.Timestamp:
    if value.tzinfo is None:
        raise ValueError(f"{field} must be timezone-aware (e.g. datetime.now(datetime.UTC))")
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(dt.UTC))
    return stamp


def metadata(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


def create_asset(*, code: str, scale: int, request_id: str | None) -> pb.CreateAssetRequest:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
        raise TypeError("scale must be a non-negative int (digits after the point, 0..18)")
    return pb.CreateAssetRequest(request_id=request_id_or_new(request_id), code=code, scale=scale)


def create_account(
    *,
    asset: str,
    debits_must_not_exceed_credits: bool,
    credits_must_not_exceed_debits: bool,
    metadata_: Mapping[str, str] | None,
    request_id: str | None,
) -> pb.CreateAccountRequest:
    return pb.CreateAccountRequest(
        request_id=request_id_or_new(request_id), asset=asset,
        debits_must_not_exceed_credits=debits_must_not_exceed_credits,
        credits_must_not_exceed_debits=credits_must_not_exceed_debits, metadata=metadata(metadata_),
    )


def create_transfer(
    *,
    debit_account_id: str,
    credit_account_id: str,
    amount: int,
    asset: str,
    pending: bool,
    hold_timeout_seconds: int,
    metadata_: Mapping[str, str] | None,
    request_id: str | None,
    field: str = "request_id",
) -> pb.CreateTransferRequest:
    seconds = hold_timeout_seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise TypeError("hold_timeout_seconds must be a non-negative int (0 = the hold never expires)")
    return pb.CreateTransferRequest(
        request_id=request_id_or_new(request_id, field), debit_account_id=debit_account_id,
        credit_account_id=credit_account_id, amount=str(amount), asset=asset, pending=pending,
        timeout_seconds=hold_timeout_seconds, metadata=metadata(metadata_),
    )


def create_transfers(
    *, items: Sequence[pb.CreateTransferRequest], atomic: bool, request_id: str | None
) -> pb.CreateTransfersRequest:
    return pb.CreateTransfersRequest(request_id=request_id_or_new(request_id), transfers=items, atomic=atomic)


def post_pending(
    *, pending_id: str, amount: int | None, metadata_: Mapping[str, str] | None, request_id: str | None
) -> pb.PostPendingTransferRequest:
    return pb.PostPendingTransferRequest(
        request_id=request_id_or_new(request_id), pending_id=pending_id,
        amount="" if amount is None else str(amount), metadata=metadata(metadata_),
    )


def void_pending(
    *, pending_id: str, metadata_: Mapping[str, str] | None, request_id: str | None
) -> pb.VoidPendingTransferRequest:
    return pb.VoidPendingTransferRequest(
        request_id=request_id_or_new(request_id), pending_id=pending_id, metadata=metadata(metadata_)
    )


def reverse_transfer(
    *, transfer_id: str, amount: int | None, metadata_: Mapping[str, str] | None, request_id: str | None
) -> pb.ReverseTransferRequest:
    return pb.ReverseTransferRequest(
        request_id=request_id_or_new(request_id), transfer_id=transfer_id,
        amount="" if amount is None else str(amount), metadata=metadata(metadata_),
    )


def adjust_pending(
    *, pending_id: str, amount: int, metadata_: Mapping[str, str] | None, request_id: str | None,
    field: str = "request_id",
) -> pb.AdjustPendingTransferRequest:
    return pb.AdjustPendingTransferRequest(
        request_id=request_id_or_new(request_id, field), pending_id=pending_id, amount=str(amount),
        metadata=metadata(metadata_),
    )


def apply_operations(
    *, operations: Sequence[pb.Operation], atomic: bool, request_id: str | None
) -> pb.ApplyOperationsRequest:
    return pb.ApplyOperationsRequest(request_id=request_id_or_new(request_id), operations=operations, atomic=atomic)


def operation(item: Operation, index: int, transfer_amount: int | None) -> pb.Operation:
    """One apply_operations item; `transfer_amount` is a NewTransfer's amount already in minor units."""
    field = f"operations[{index}].request_id"
    if isinstance(item, NewTransfer):
        assert transfer_amount is not None
        return pb.Operation(create_transfer=create_transfer(
            debit_account_id=item.debit_account_id, credit_account_id=item.credit_account_id, amount=transfer_amount,
            asset=item.asset, pending=item.pending, hold_timeout_seconds=item.hold_timeout_seconds,
            metadata_=item.metadata, request_id=item.request_id, field=field))
    if isinstance(item, PostPending):
        return pb.Operation(post_pending=pb.PostPendingTransferRequest(
            request_id=request_id_or_new(item.request_id, field), pending_id=item.pending_id,
            amount="" if item.amount is None else str(to_minor_units(item.amount, None)),
            metadata=metadata(item.metadata)))
    if isinstance(item, VoidPending):
        return pb.Operation(void_pending=pb.VoidPendingTransferRequest(
            request_id=request_id_or_new(item.request_id, field), pending_id=item.pending_id,
            metadata=metadata(item.metadata)))
    if isinstance(item, Reverse):
        return pb.Operation(reverse=pb.ReverseTransferRequest(
            request_id=request_id_or_new(item.request_id, field), transfer_id=item.transfer_id,
            amount="" if item.amount is None else str(to_minor_units(item.amount, None)),
            metadata=metadata(item.metadata)))
    if isinstance(item, AdjustPending):
        return pb.Operation(adjust_pending=adjust_pending(
            pending_id=item.pending_id, amount=to_minor_units(item.amount, None), metadata_=item.metadata,
            request_id=item.request_id, field=field))
    raise TypeError(f"not an operation: {item!r}")


def operation_request_id(item: pb.Operation) -> str:
    kind = item.WhichOneof("operation")
    assert kind is not None
    request_id: str = getattr(item, kind).request_id
    return request_id


def get_transfer(*, transfer_id: str | None, request_id: str | None) -> pb.GetTransferRequest:
    if (transfer_id is None) == (request_id is None):
        raise MissingField(
            "pass exactly one of transfer_id and request_id", code=grpc.StatusCode.INVALID_ARGUMENT,
            metadata={"field": "key", "source": "client"},
        )
    if transfer_id is not None:
        return pb.GetTransferRequest(id=transfer_id)
    return pb.GetTransferRequest(request_id=request_id)


def list_accounts(
    *, asset: str | None, metadata_: Mapping[str, str] | None, page_size: int, page_token: str
) -> pb.ListAccountsRequest:
    return pb.ListAccountsRequest(
        asset=asset or "", metadata=metadata(metadata_), page_size=page_size, page_token=page_token
    )


def get_account_balance(*, account_id: str, as_of: dt.datetime | None) -> pb.GetAccountBalanceRequest:
    request = pb.GetAccountBalanceRequest(account_id=account_id)
    if as_of is not None:
        request.as_of.CopyFrom(timestamp(as_of, "as_of"))
    return request


def list_account_entries(
    *,
    account_id: str,
    page_size: int,
    page_token: str,
    start_time: dt.datetime | None,
    end_time: dt.datetime | None,
) -> pb.ListAccountEntriesRequest:
    request = pb.ListAccountEntriesRequest(account_id=account_id, page_size=page_size, page_token=page_token)
    if start_time is not None:
        request.start_time.CopyFrom(timestamp(start_time, "start_time"))
    if end_time is not None:
        request.end_time.CopyFrom(timestamp(end_time, "end_time"))
    return request


def create_api_key(
    *, name: str, scopes: Sequence[str], tenant: str | None, request_id: str | None
) -> admin_pb2.CreateApiKeyRequest:
    return admin_pb2.CreateApiKeyRequest(
        request_id=request_id_or_new(request_id), name=name, scopes=list(scopes), tenant=tenant or ""
    )


def create_certificate_caller(
    *, name: str, certificate_subject: str, scopes: Sequence[str], tenant: str | None, request_id: str | None
) -> admin_pb2.CreateCertificateCallerRequest:
    return admin_pb2.CreateCertificateCallerRequest(
        request_id=request_id_or_new(request_id), name=name, certificate_subject=certificate_subject,
        scopes=list(scopes), tenant=tenant or "",
    )


def list_audit_records(
    *, caller: str | None, start_time: dt.datetime | None, page_size: int, page_token: str
) -> admin_pb2.ListAuditRecordsRequest:
    request = admin_pb2.ListAuditRecordsRequest(caller=caller or "", page_size=page_size, page_token=page_token)
    if start_time is not None:
        request.start_time.CopyFrom(timestamp(start_time, "start_time"))
    return request
