"""Request validation: wire messages in, canonical commands out, or INVALID_ARGUMENT with a reason.

Everything is checked before anything is queued, so a malformed request changes nothing and is
never remembered under its request id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ledger.v1 import ledger_pb2
from ledger_server import commands as c
from ledger_server.amounts import parse_amount
from ledger_server.errors import LedgerError, invalid

REQUEST_ID = re.compile(r"[\x21-\x7e]{1,255}")
ASSET_CODE = re.compile(r"[A-Z0-9_]{1,16}")
METADATA_KEYS_MAX = 32
METADATA_KEY_CHARS_MAX = 64
METADATA_VALUE_CHARS_MAX = 512
BATCH_ITEMS_MAX = 8000
TIMEOUT_SECONDS_MAX = 60 * 60 * 24 * 400  # lodging and airline captures come up to 31 days later


def request_id(value: str, field: str = "request_id") -> str:
    if not REQUEST_ID.fullmatch(value):
        raise invalid("INVALID_REQUEST_ID", f"{field} must be 1..255 printable ASCII characters", field=field)
    return value


def identifier(value: str, field: str) -> uuid.UUID:
    if not value:
        raise invalid("MISSING_FIELD", f"{field} is required", field=field)
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise invalid("INVALID_ID", f"{field} is not a valid id", field=field) from None
    if str(parsed) != value.lower():
        raise invalid("INVALID_ID", f"{field} must be a UUID in its canonical form", field=field)
    return parsed


def asset_code(value: str, field: str = "asset") -> str:
    if not ASSET_CODE.fullmatch(value):
        raise invalid("INVALID_ASSET_CODE", f"{field} must be 1..16 of A-Z, 0-9 and _", field=field)
    return value


def amount(value: str, field: str = "amount", *, optional: bool = False) -> int | None:
    """A positive amount; an empty string is None when the field is optional."""
    if optional and value == "":
        return None
    try:
        parsed = parse_amount(value)
    except ValueError as error:
        raise invalid("INVALID_AMOUNT", f"{field}: {error}", field=field) from None
    if parsed == 0:
        raise invalid("INVALID_AMOUNT", f"{field} must be greater than zero", field=field)
    return parsed


def metadata(value: Mapping[str, str], field: str = "metadata") -> dict[str, str]:
    if len(value) > METADATA_KEYS_MAX:
        raise invalid("INVALID_METADATA", f"{field} has more than {METADATA_KEYS_MAX} keys", field=field)
    for key, item in value.items():
        if not 1 <= len(key) <= METADATA_KEY_CHARS_MAX or len(item) > METADATA_VALUE_CHARS_MAX:
            raise invalid("INVALID_METADATA", f"{field} key or value too long", field=field)
        if "\x00" in key or "\x00" in item:
            raise invalid("INVALID_METADATA", f"{field} must not contain NUL characters", field=field)
    return dict(value)


def create_asset(request: ledger_pb2.CreateAssetRequest) -> c.CreateAsset:
    if request.scale > 18:
        raise invalid("INVALID_SCALE", "scale must be 0..18", field="scale")
    return c.CreateAsset(request_id(request.request_id), asset_code(request.code, "code"), request.scale)


def create_account(request: ledger_pb2.CreateAccountRequest) -> c.CreateAccount:
    rid = request_id(request.request_id)
    if request.debits_must_not_exceed_credits and request.credits_must_not_exceed_debits:
        raise invalid("INVALID_FLAGS", "the two balance flags are mutually exclusive", field="flags")
    return c.CreateAccount(
        rid, asset_code(request.asset), request.debits_must_not_exceed_credits,
        request.credits_must_not_exceed_debits, metadata(request.metadata),
    )


def create_transfer(request: ledger_pb2.CreateTransferRequest, prefix: str = "") -> c.CreateTransfer:
    rid = request_id(request.request_id, prefix + "request_id")
    value = amount(request.amount, prefix + "amount")
    assert value is not None
    if request.timeout_seconds and not request.pending:
        raise invalid("INVALID_TIMEOUT", "timeout_seconds applies to pending transfers only", field="timeout_seconds")
    if request.timeout_seconds > TIMEOUT_SECONDS_MAX:
        raise invalid("INVALID_TIMEOUT", f"timeout_seconds exceeds {TIMEOUT_SECONDS_MAX}", field="timeout_seconds")
    return c.CreateTransfer(
        rid,
        identifier(request.debit_account_id, prefix + "debit_account_id"),
        identifier(request.credit_account_id, prefix + "credit_account_id"),
        value,
        asset_code(request.asset, prefix + "asset"),
        request.pending,
        request.timeout_seconds,
        metadata(request.metadata, prefix + "metadata"),
    )


def create_transfers(request: ledger_pb2.CreateTransfersRequest) -> c.TransferBatch:
    rid = request_id(request.request_id)
    if not request.transfers:
        raise invalid("BATCH_EMPTY", "transfers must not be empty", field="transfers")
    if len(request.transfers) > BATCH_ITEMS_MAX:
        raise invalid("BATCH_TOO_LARGE", f"at most {BATCH_ITEMS_MAX} transfers per batch", field="transfers")
    items = []
    for index, item in enumerate(request.transfers):
        try:
            items.append(create_transfer(item, f"transfers[{index}]."))
        except LedgerError as error:
            raise invalid(error.reason, error.message, index=str(index), **error.metadata) from None
        if item.request_id == rid:
            raise invalid("INVALID_REQUEST_ID", "an item must not reuse the batch's request_id", index=str(index))
    return c.TransferBatch(rid, tuple(items), request.atomic)


def adjust_pending(request: ledger_pb2.AdjustPendingTransferRequest, prefix: str = "") -> c.AdjustPending:
    value = amount(request.amount, prefix + "amount")
    assert value is not None
    return c.AdjustPending(
        request_id(request.request_id, prefix + "request_id"), identifier(request.pending_id, prefix + "pending_id"),
        value, metadata(request.metadata, prefix + "metadata"),
    )


def apply_operations(request: ledger_pb2.ApplyOperationsRequest) -> c.OperationBatch:
    rid = request_id(request.request_id)
    if not request.operations:
        raise invalid("BATCH_EMPTY", "operations must not be empty", field="operations")
    if len(request.operations) > BATCH_ITEMS_MAX:
        raise invalid("BATCH_TOO_LARGE", f"at most {BATCH_ITEMS_MAX} operations per batch", field="operations")
    items: list[c.TransferCommand] = []
    for index, operation in enumerate(request.operations):
        prefix = f"operations[{index}]."
        kind = operation.WhichOneof("operation")
        try:
            if kind is None:
                raise invalid("MISSING_FIELD", f"{prefix}operation is required", field=prefix + "operation")
            items.append(_OPERATION_PARSERS[kind](getattr(operation, kind), prefix))
        except LedgerError as error:
            raise invalid(error.reason, error.message, index=str(index), **error.metadata) from None
        if items[-1].request_id == rid:
            raise invalid("INVALID_REQUEST_ID", "an item must not reuse the batch's request_id", index=str(index))
    return c.OperationBatch(rid, tuple(items), request.atomic)


def post_pending(request: ledger_pb2.PostPendingTransferRequest, prefix: str = "") -> c.PostPending:
    return c.PostPending(
        request_id(request.request_id, prefix + "request_id"), identifier(request.pending_id, prefix + "pending_id"),
        amount(request.amount, prefix + "amount", optional=True), metadata(request.metadata, prefix + "metadata"),
    )


def void_pending(request: ledger_pb2.VoidPendingTransferRequest, prefix: str = "") -> c.VoidPending:
    return c.VoidPending(
        request_id(request.request_id, prefix + "request_id"), identifier(request.pending_id, prefix + "pending_id"),
        metadata(request.metadata, prefix + "metadata"),
    )


def reverse_transfer(request: ledger_pb2.ReverseTransferRequest, prefix: str = "") -> c.ReverseTransfer:
    return c.ReverseTransfer(
        request_id(request.request_id, prefix + "request_id"), identifier(request.transfer_id, prefix + "transfer_id"),
        amount(request.amount, prefix + "amount", optional=True), metadata(request.metadata, prefix + "metadata"),
    )


_OPERATION_PARSERS: dict[str, Callable[[Any, str], c.TransferCommand]] = {
    "create_transfer": create_transfer,
    "post_pending": post_pending,
    "void_pending": void_pending,
    "reverse": reverse_transfer,
    "adjust_pending": adjust_pending,
}


def page_size(value: int, default: int = 100, maximum: int = 1000) -> int:
    if value > maximum:
        raise invalid("INVALID_PAGE_SIZE", f"page_size must be at most {maximum}", field="page_size")
    return value or default
