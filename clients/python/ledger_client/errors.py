"""One exception class per documented `ErrorInfo.reason`, all under `LedgerError`.

Callers catch classes (`except InsufficientFunds:`) and read attributes (`error.reason`,
`error.code`, `error.metadata`); nobody parses an error string. Classes are grouped by what the
caller should do next:

- `InvalidRequest` (INVALID_ARGUMENT): fix the request; nothing was written.
- `Rejected` (FAILED_PRECONDITION): a business refusal, final for that request id.
- `IdempotencyKeyReused` (ALREADY_EXISTS): the request id was used for another payload.
- `NotFound` (NOT_FOUND): a read found nothing.
- `Transient` (UNAVAILABLE, ABORTED, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED): safe to retry with the
  same request id; the SDK already did, until its attempts or the call's deadline ran out.
- `Unauthenticated`, `PermissionDenied`: credentials, scopes, tenants; refused before any work.
- `Internal`, `Cancelled`, `UnexpectedStatus`: the rest.

Statuses without an ErrorInfo (a dropped connection, a client-side deadline, a proxy) map by gRPC
code (`Unavailable`, `DeadlineExceeded`, ...) and have `reason == ""`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import grpc

DOMAIN = "ledger.v1"  # ErrorInfo.domain of every reason the server sends

__all__ = [
    "BY_REASON",
    "DOMAIN",
    "Aborted",
    "AccountNotFound",
    "AssetAlreadyExists",
    "AssetMismatch",
    "AssetNotFound",
    "BatchEmpty",
    "BatchItemFailed",
    "BatchTooLarge",
    "CallerAlreadyExists",
    "CallerAlreadyRevoked",
    "CallerNotFound",
    "Cancelled",
    "ChainAssetConflict",
    "ChainAssetNotFound",
    "CreditLimitExceeded",
    "DatabaseUnavailable",
    "DeadlineExceeded",
    "DecimalsMismatch",
    "DeliveryNotFound",
    "DeliveryPending",
    "DepositAddressTaken",
    "ExceedsPendingAmount",
    "ExceedsReversibleAmount",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "Internal",
    "InvalidAmount",
    "InvalidAssetCode",
    "InvalidChainAddress",
    "InvalidChainId",
    "InvalidConfirmations",
    "InvalidCredentials",
    "InvalidEventType",
    "InvalidFlags",
    "InvalidGracePeriod",
    "InvalidId",
    "InvalidMetadata",
    "InvalidOmnibusAccount",
    "InvalidPageSize",
    "InvalidPageToken",
    "InvalidRequest",
    "InvalidRequestId",
    "InvalidScale",
    "InvalidScope",
    "InvalidSequenceRange",
    "InvalidTimeRange",
    "InvalidTimeout",
    "InvalidUrl",
    "LedgerError",
    "MalformedRequest",
    "MissingCredentials",
    "MissingField",
    "MissingScope",
    "NotFound",
    "Overflow",
    "Overloaded",
    "PendingAlreadyPosted",
    "PendingAlreadyVoided",
    "PendingAmountUnchanged",
    "PendingExpired",
    "PendingNotFound",
    "PermissionDenied",
    "RateLimited",
    "Rejected",
    "SameAccount",
    "SerializationRetriesExhausted",
    "ShuttingDown",
    "TenantMismatch",
    "Timeout",
    "TransferNotFound",
    "TransferNotReversible",
    "Transient",
    "Unauthenticated",
    "Unavailable",
    "UnexpectedStatus",
    "UrlNotAllowed",
    "WebhookEndpointNotEnabled",
    "WebhookEndpointNotFound",
    "build_error",
    "error_class",
    "status_code",
]


class LedgerError(Exception):
    """A failed ledger call: gRPC code, ErrorReason name, message and ErrorInfo metadata."""

    REASON: ClassVar[str] = ""  # the ErrorReason name a leaf class stands for

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        attempts: int = 1,
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = self.REASON if reason is None else reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.request_id = request_id  # the request id the SDK sent (mutating calls)
        self.attempts = attempts  # how many attempts the SDK made before giving up
        self.retry_delay_s = retry_delay_s  # google.rpc.RetryInfo sent by the server, if any

    def __str__(self) -> str:
        head = self.reason or self.code.name
        return f"{head}: {self.message}" if self.message else head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, code={self.code.name}, message={self.message!r}, "
            f"metadata={self.metadata!r}, request_id={self.request_id!r})"
        )


# -- INVALID_ARGUMENT: the request itself is malformed; nothing is written or remembered ----------


class InvalidRequest(LedgerError):
    """The request is malformed (INVALID_ARGUMENT). Fix it; retrying the same request cannot help."""


class InvalidRequestId(InvalidRequest):
    REASON = "INVALID_REQUEST_ID"


class InvalidAmount(InvalidRequest):
    REASON = "INVALID_AMOUNT"


class InvalidId(InvalidRequest):
    REASON = "INVALID_ID"


class InvalidAssetCode(InvalidRequest):
    REASON = "INVALID_ASSET_CODE"


class InvalidScale(InvalidRequest):
    REASON = "INVALID_SCALE"


class InvalidMetadata(InvalidRequest):
    REASON = "INVALID_METADATA"


class InvalidFlags(InvalidRequest):
    REASON = "INVALID_FLAGS"


class InvalidTimeout(InvalidRequest):
    REASON = "INVALID_TIMEOUT"


class InvalidPageSize(InvalidRequest):
    REASON = "INVALID_PAGE_SIZE"


class InvalidPageToken(InvalidRequest):
    REASON = "INVALID_PAGE_TOKEN"


class InvalidTimeRange(InvalidRequest):
    REASON = "INVALID_TIME_RANGE"


class BatchEmpty(InvalidRequest):
    REASON = "BATCH_EMPTY"


class BatchTooLarge(InvalidRequest):
    REASON = "BATCH_TOO_LARGE"


class MissingField(InvalidRequest):
    REASON = "MISSING_FIELD"


class InvalidScope(InvalidRequest):
    REASON = "INVALID_SCOPE"


class MalformedRequest(InvalidRequest):
    REASON = "MALFORMED_REQUEST"


class InvalidUrl(InvalidRequest):
    REASON = "INVALID_URL"


class InvalidChainId(InvalidRequest):
    REASON = "INVALID_CHAIN_ID"


class InvalidChainAddress(InvalidRequest):
    REASON = "INVALID_CHAIN_ADDRESS"


class InvalidConfirmations(InvalidRequest):
    REASON = "INVALID_CONFIRMATIONS"


class UrlNotAllowed(InvalidRequest):
    """A webhook URL on a loopback, private, link-local or metadata address, or plain http."""

    REASON = "URL_NOT_ALLOWED"


class InvalidEventType(InvalidRequest):
    REASON = "INVALID_EVENT_TYPE"


class InvalidSequenceRange(InvalidRequest):
    REASON = "INVALID_SEQUENCE_RANGE"


class InvalidGracePeriod(InvalidRequest):
    REASON = "INVALID_GRACE_PERIOD"


# -- NOT_FOUND -------------------------------------------------------------------------------------


class NotFound(LedgerError):
    """A read found nothing under that key (NOT_FOUND)."""

    REASON = "NOT_FOUND"


# -- FAILED_PRECONDITION: business rejections, bound to the request id for good -------------------


class Rejected(LedgerError):
    """A business rejection (FAILED_PRECONDITION). Final for this request id: a new attempt needs a new id."""


class InsufficientFunds(Rejected):
    REASON = "INSUFFICIENT_FUNDS"


class CreditLimitExceeded(Rejected):
    REASON = "CREDIT_LIMIT_EXCEEDED"


class AccountNotFound(Rejected, NotFound):
    """FAILED_PRECONDITION in a mutation, NOT_FOUND in a read: catchable as either."""

    REASON = "ACCOUNT_NOT_FOUND"


class AssetNotFound(Rejected, NotFound):
    """FAILED_PRECONDITION in a mutation, NOT_FOUND in a read: catchable as either."""

    REASON = "ASSET_NOT_FOUND"


class AssetMismatch(Rejected):
    REASON = "ASSET_MISMATCH"


class SameAccount(Rejected):
    REASON = "SAME_ACCOUNT"


class PendingNotFound(Rejected, NotFound):
    """FAILED_PRECONDITION in a mutation, NOT_FOUND in a read: catchable as either."""

    REASON = "PENDING_NOT_FOUND"


class PendingAlreadyPosted(Rejected):
    REASON = "PENDING_ALREADY_POSTED"


class PendingAlreadyVoided(Rejected):
    REASON = "PENDING_ALREADY_VOIDED"


class PendingExpired(Rejected):
    REASON = "PENDING_EXPIRED"


class ExceedsPendingAmount(Rejected):
    REASON = "EXCEEDS_PENDING_AMOUNT"


class ExceedsReversibleAmount(Rejected):
    REASON = "EXCEEDS_REVERSIBLE_AMOUNT"


class TransferNotFound(Rejected, NotFound):
    """FAILED_PRECONDITION in a mutation, NOT_FOUND in a read: catchable as either."""

    REASON = "TRANSFER_NOT_FOUND"


class TransferNotReversible(Rejected):
    REASON = "TRANSFER_NOT_REVERSIBLE"


class Overflow(Rejected):
    REASON = "OVERFLOW"


class AssetAlreadyExists(Rejected):
    REASON = "ASSET_ALREADY_EXISTS"


class BatchItemFailed(Rejected):
    REASON = "BATCH_ITEM_FAILED"


class CallerNotFound(Rejected, NotFound):
    REASON = "CALLER_NOT_FOUND"


class CallerAlreadyRevoked(Rejected):
    REASON = "CALLER_ALREADY_REVOKED"


class CallerAlreadyExists(Rejected):
    REASON = "CALLER_ALREADY_EXISTS"


class PendingAmountUnchanged(Rejected):
    REASON = "PENDING_AMOUNT_UNCHANGED"


class ChainAssetNotFound(Rejected):
    REASON = "CHAIN_ASSET_NOT_FOUND"


class ChainAssetConflict(Rejected):
    REASON = "CHAIN_ASSET_CONFLICT"


class DepositAddressTaken(Rejected):
    REASON = "DEPOSIT_ADDRESS_TAKEN"


class DecimalsMismatch(Rejected):
    REASON = "DECIMALS_MISMATCH"


class InvalidOmnibusAccount(Rejected):
    REASON = "INVALID_OMNIBUS_ACCOUNT"


class WebhookEndpointNotFound(Rejected):
    REASON = "WEBHOOK_ENDPOINT_NOT_FOUND"


class WebhookEndpointNotEnabled(Rejected):
    REASON = "WEBHOOK_ENDPOINT_NOT_ENABLED"


class DeliveryNotFound(Rejected, NotFound):
    """FAILED_PRECONDITION in a replay, NOT_FOUND in a read: catchable as either."""

    REASON = "DELIVERY_NOT_FOUND"


class DeliveryPending(Rejected):
    REASON = "DELIVERY_PENDING"


# -- ALREADY_EXISTS ------------------------------------------------------------------------------


class IdempotencyKeyReused(LedgerError):
    """The request id was used before with a different payload (ALREADY_EXISTS); nothing was done."""

    REASON = "IDEMPOTENCY_KEY_REUSED"


# -- transient: safe to retry with the same request id -------------------------------------------


class Transient(LedgerError):
    """Nothing is remembered for the request id: retrying with the same id is safe."""


class SerializationRetriesExhausted(Transient):
    REASON = "SERIALIZATION_RETRIES_EXHAUSTED"


class DatabaseUnavailable(Transient):
    REASON = "DATABASE_UNAVAILABLE"


class Overloaded(Transient):
    REASON = "OVERLOADED"


class ShuttingDown(Transient):
    REASON = "SHUTTING_DOWN"


class Timeout(Transient):
    REASON = "TIMEOUT"


class WriterRestarted(Transient):
    """The server's writer process died holding the request; it may have committed, and the retry
    with the same request id returns that outcome if it did."""

    REASON = "WRITER_RESTARTED"


class RateLimited(Transient):
    """RESOURCE_EXHAUSTED with a RetryInfo delay: the SDK waited that long and retried."""

    REASON = "RATE_LIMITED"


class Unavailable(Transient):
    """UNAVAILABLE without an ErrorInfo: no connection, or it dropped mid-call."""


class DeadlineExceeded(Transient):
    """DEADLINE_EXCEEDED without an ErrorInfo: the call's deadline passed before an answer came."""


class Aborted(Transient):
    """ABORTED or RESOURCE_EXHAUSTED without a known reason (e.g. from a proxy)."""


# -- the rest -------------------------------------------------------------------------------------


class Internal(LedgerError):
    """A server bug (INTERNAL): nothing was written. Not retried automatically; it is alerted on."""

    REASON = "INTERNAL"


class Cancelled(LedgerError):
    """The call was cancelled on the client side."""


class Unauthenticated(LedgerError):
    """No or wrong credentials (UNAUTHENTICATED): refused before any work."""


class MissingCredentials(Unauthenticated):
    REASON = "MISSING_CREDENTIALS"


class InvalidCredentials(Unauthenticated):
    """An unknown, malformed or revoked key, or an unknown certificate subject."""

    REASON = "INVALID_CREDENTIALS"


class PermissionDenied(LedgerError):
    """The credentials may not do this (PERMISSION_DENIED): refused before any work."""


class MissingScope(PermissionDenied):
    REASON = "MISSING_SCOPE"


class TenantMismatch(PermissionDenied):
    """The caller is limited to a tenant and the accounts belong to another."""

    REASON = "TENANT_MISMATCH"


class UnexpectedStatus(LedgerError):
    """A status the ledger API does not document (UNKNOWN, UNIMPLEMENTED, ...)."""


def _leaf_classes(root: type[LedgerError]) -> list[type[LedgerError]]:
    found: list[type[LedgerError]] = []
    for sub in root.__subclasses__():
        if sub.REASON:
            found.append(sub)
        found.extend(_leaf_classes(sub))
    return found


BY_REASON: Mapping[str, type[LedgerError]] = {cls.REASON: cls for cls in _leaf_classes(LedgerError)}

_BY_CODE: Mapping[grpc.StatusCode, type[LedgerError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.FAILED_PRECONDITION: Rejected,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Aborted,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}
_CODES_BY_NUMBER: Mapping[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_class(code: grpc.StatusCode, reason: str) -> type[LedgerError]:
    """The class for a reason; by code when the reason is absent or unknown to this SDK version."""
    return BY_REASON.get(reason) or _BY_CODE.get(code, UnexpectedStatus)


def build_error(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    metadata: Mapping[str, str] | None = None,
    *,
    request_id: str | None = None,
    attempts: int = 1,
    retry_delay_s: float | None = None,
) -> LedgerError:
    """The typed exception for a status (code + ErrorInfo reason)."""
    cls = error_class(code, reason)
    return cls(
        message, code=code, reason=reason, metadata=metadata, request_id=request_id, attempts=attempts,
        retry_delay_s=retry_delay_s,
    )


def status_code(number: int) -> grpc.StatusCode:
    """grpc.StatusCode from its google.rpc.Code number (UNKNOWN for numbers gRPC does not define)."""
    return _CODES_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)
