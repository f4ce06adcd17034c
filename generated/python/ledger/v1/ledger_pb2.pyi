import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.v1 import admin_pb2 as _admin_pb2
from ledger.v1 import chain_pb2 as _chain_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    INVALID_REQUEST_ID: _ClassVar[ErrorReason]
    INVALID_AMOUNT: _ClassVar[ErrorReason]
    INVALID_ID: _ClassVar[ErrorReason]
    INVALID_ASSET_CODE: _ClassVar[ErrorReason]
    INVALID_SCALE: _ClassVar[ErrorReason]
    INVALID_METADATA: _ClassVar[ErrorReason]
    INVALID_FLAGS: _ClassVar[ErrorReason]
    INVALID_TIMEOUT: _ClassVar[ErrorReason]
    INVALID_PAGE_SIZE: _ClassVar[ErrorReason]
    INVALID_PAGE_TOKEN: _ClassVar[ErrorReason]
    INVALID_TIME_RANGE: _ClassVar[ErrorReason]
    BATCH_EMPTY: _ClassVar[ErrorReason]
    BATCH_TOO_LARGE: _ClassVar[ErrorReason]
    MISSING_FIELD: _ClassVar[ErrorReason]
    INSUFFICIENT_FUNDS: _ClassVar[ErrorReason]
    CREDIT_LIMIT_EXCEEDED: _ClassVar[ErrorReason]
    ACCOUNT_NOT_FOUND: _ClassVar[ErrorReason]
    ASSET_NOT_FOUND: _ClassVar[ErrorReason]
    ASSET_MISMATCH: _ClassVar[ErrorReason]
    SAME_ACCOUNT: _ClassVar[ErrorReason]
    PENDING_NOT_FOUND: _ClassVar[ErrorReason]
    PENDING_ALREADY_POSTED: _ClassVar[ErrorReason]
    PENDING_ALREADY_VOIDED: _ClassVar[ErrorReason]
    PENDING_EXPIRED: _ClassVar[ErrorReason]
    EXCEEDS_PENDING_AMOUNT: _ClassVar[ErrorReason]
    EXCEEDS_REVERSIBLE_AMOUNT: _ClassVar[ErrorReason]
    TRANSFER_NOT_FOUND: _ClassVar[ErrorReason]
    TRANSFER_NOT_REVERSIBLE: _ClassVar[ErrorReason]
    OVERFLOW: _ClassVar[ErrorReason]
    ASSET_ALREADY_EXISTS: _ClassVar[ErrorReason]
    BATCH_ITEM_FAILED: _ClassVar[ErrorReason]
    IDEMPOTENCY_KEY_REUSED: _ClassVar[ErrorReason]
    NOT_FOUND: _ClassVar[ErrorReason]
    SERIALIZATION_RETRIES_EXHAUSTED: _ClassVar[ErrorReason]
    DATABASE_UNAVAILABLE: _ClassVar[ErrorReason]
    OVERLOADED: _ClassVar[ErrorReason]
    SHUTTING_DOWN: _ClassVar[ErrorReason]
    TIMEOUT: _ClassVar[ErrorReason]
    INTERNAL: _ClassVar[ErrorReason]
    WRITER_RESTARTED: _ClassVar[ErrorReason]
    MISSING_CREDENTIALS: _ClassVar[ErrorReason]
    INVALID_CREDENTIALS: _ClassVar[ErrorReason]
    MISSING_SCOPE: _ClassVar[ErrorReason]
    TENANT_MISMATCH: _ClassVar[ErrorReason]
    RATE_LIMITED: _ClassVar[ErrorReason]
    INVALID_SCOPE: _ClassVar[ErrorReason]
    CALLER_NOT_FOUND: _ClassVar[ErrorReason]
    CALLER_ALREADY_REVOKED: _ClassVar[ErrorReason]
    CALLER_ALREADY_EXISTS: _ClassVar[ErrorReason]
    MALFORMED_REQUEST: _ClassVar[ErrorReason]
    PENDING_AMOUNT_UNCHANGED: _ClassVar[ErrorReason]
    INVALID_URL: _ClassVar[ErrorReason]
    URL_NOT_ALLOWED: _ClassVar[ErrorReason]
    INVALID_EVENT_TYPE: _ClassVar[ErrorReason]
    INVALID_SEQUENCE_RANGE: _ClassVar[ErrorReason]
    INVALID_GRACE_PERIOD: _ClassVar[ErrorReason]
    WEBHOOK_ENDPOINT_NOT_FOUND: _ClassVar[ErrorReason]
    WEBHOOK_ENDPOINT_NOT_ENABLED: _ClassVar[ErrorReason]
    DELIVERY_NOT_FOUND: _ClassVar[ErrorReason]
    DELIVERY_PENDING: _ClassVar[ErrorReason]
    INVALID_CHAIN_ID: _ClassVar[ErrorReason]
    INVALID_CHAIN_ADDRESS: _ClassVar[ErrorReason]
    INVALID_CONFIRMATIONS: _ClassVar[ErrorReason]
    CHAIN_ASSET_NOT_FOUND: _ClassVar[ErrorReason]
    CHAIN_ASSET_CONFLICT: _ClassVar[ErrorReason]
    DEPOSIT_ADDRESS_TAKEN: _ClassVar[ErrorReason]
    DECIMALS_MISMATCH: _ClassVar[ErrorReason]
    INVALID_OMNIBUS_ACCOUNT: _ClassVar[ErrorReason]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    DEBIT: _ClassVar[Side]
    CREDIT: _ClassVar[Side]

class TransferState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_STATE_UNSPECIFIED: _ClassVar[TransferState]
    PENDING: _ClassVar[TransferState]
    POSTED: _ClassVar[TransferState]
    VOIDED: _ClassVar[TransferState]
    EXPIRED: _ClassVar[TransferState]

class TransferKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_KIND_UNSPECIFIED: _ClassVar[TransferKind]
    SINGLE_PHASE: _ClassVar[TransferKind]
    HOLD: _ClassVar[TransferKind]
    POST_PENDING: _ClassVar[TransferKind]
    VOID_PENDING: _ClassVar[TransferKind]
    EXPIRE_PENDING: _ClassVar[TransferKind]
    REVERSAL: _ClassVar[TransferKind]
    INCREASE_PENDING: _ClassVar[TransferKind]
    DECREASE_PENDING: _ClassVar[TransferKind]
ERROR_REASON_UNSPECIFIED: ErrorReason
INVALID_REQUEST_ID: ErrorReason
INVALID_AMOUNT: ErrorReason
INVALID_ID: ErrorReason
INVALID_ASSET_CODE: ErrorReason
INVALID_SCALE: ErrorReason
INVALID_METADATA: ErrorReason
INVALID_FLAGS: ErrorReason
INVALID_TIMEOUT: ErrorReason
INVALID_PAGE_SIZE: ErrorReason
INVALID_PAGE_TOKEN: ErrorReason
INVALID_TIME_RANGE: ErrorReason
BATCH_EMPTY: ErrorReason
BATCH_TOO_LARGE: ErrorReason
MISSING_FIELD: ErrorReason
INSUFFICIENT_FUNDS: ErrorReason
CREDIT_LIMIT_EXCEEDED: ErrorReason
ACCOUNT_NOT_FOUND: ErrorReason
ASSET_NOT_FOUND: ErrorReason
ASSET_MISMATCH: ErrorReason
SAME_ACCOUNT: ErrorReason
PENDING_NOT_FOUND: ErrorReason
PENDING_ALREADY_POSTED: ErrorReason
PENDING_ALREADY_VOIDED: ErrorReason
PENDING_EXPIRED: ErrorReason
EXCEEDS_PENDING_AMOUNT: ErrorReason
EXCEEDS_REVERSIBLE_AMOUNT: ErrorReason
TRANSFER_NOT_FOUND: ErrorReason
TRANSFER_NOT_REVERSIBLE: ErrorReason
OVERFLOW: ErrorReason
ASSET_ALREADY_EXISTS: ErrorReason
BATCH_ITEM_FAILED: ErrorReason
IDEMPOTENCY_KEY_REUSED: ErrorReason
NOT_FOUND: ErrorReason
SERIALIZATION_RETRIES_EXHAUSTED: ErrorReason
DATABASE_UNAVAILABLE: ErrorReason
OVERLOADED: ErrorReason
SHUTTING_DOWN: ErrorReason
TIMEOUT: ErrorReason
INTERNAL: ErrorReason
WRITER_RESTARTED: ErrorReason
MISSING_CREDENTIALS: ErrorReason
INVALID_CREDENTIALS: ErrorReason
MISSING_SCOPE: ErrorReason
TENANT_MISMATCH: ErrorReason
RATE_LIMITED: ErrorReason
INVALID_SCOPE: ErrorReason
CALLER_NOT_FOUND: ErrorReason
CALLER_ALREADY_REVOKED: ErrorReason
CALLER_ALREADY_EXISTS: ErrorReason
MALFORMED_REQUEST: ErrorReason
PENDING_AMOUNT_UNCHANGED: ErrorReason
INVALID_URL: ErrorReason
URL_NOT_ALLOWED: ErrorReason
INVALID_EVENT_TYPE: ErrorReason
INVALID_SEQUENCE_RANGE: ErrorReason
INVALID_GRACE_PERIOD: ErrorReason
WEBHOOK_ENDPOINT_NOT_FOUND: ErrorReason
WEBHOOK_ENDPOINT_NOT_ENABLED: ErrorReason
DELIVERY_NOT_FOUND: ErrorReason
DELIVERY_PENDING: ErrorReason
INVALID_CHAIN_ID: ErrorReason
INVALID_CHAIN_ADDRESS: ErrorReason
INVALID_CONFIRMATIONS: ErrorReason
CHAIN_ASSET_NOT_FOUND: ErrorReason
CHAIN_ASSET_CONFLICT: ErrorReason
DEPOSIT_ADDRESS_TAKEN: ErrorReason
DECIMALS_MISMATCH: ErrorReason
INVALID_OMNIBUS_ACCOUNT: ErrorReason
SIDE_UNSPECIFIED: Side
DEBIT: Side
CREDIT: Side
TRANSFER_STATE_UNSPECIFIED: TransferState
PENDING: TransferState
POSTED: TransferState
VOIDED: TransferState
EXPIRED: TransferState
TRANSFER_KIND_UNSPECIFIED: TransferKind
SINGLE_PHASE: TransferKind
HOLD: TransferKind
POST_PENDING: TransferKind
VOID_PENDING: TransferKind
EXPIRE_PENDING: TransferKind
REVERSAL: TransferKind
INCREASE_PENDING: TransferKind
DECREASE_PENDING: TransferKind

class Asset(_message.Message):
    __slots__ = ("code", "scale", "created_at")
    CODE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    code: str
    scale: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, code: _Optional[str] = ..., scale: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAssetRequest(_message.Message):
    __slots__ = ("request_id", "code", "scale")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    code: str
    scale: int
    def __init__(self, request_id: _Optional[str] = ..., code: _Optional[str] = ..., scale: _Optional[int] = ...) -> None: ...

class GetAssetRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ListAssetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAssetsResponse(_message.Message):
    __slots__ = ("assets", "next_page_token")
    ASSETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    assets: _containers.RepeatedCompositeFieldContainer[Asset]
    next_page_token: str
    def __init__(self, assets: _Optional[_Iterable[_Union[Asset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("id", "asset", "debits_pending", "debits_posted", "credits_pending", "credits_posted", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits", "metadata", "created_at", "version")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    DEBITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DEBITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    CREDITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    DEBITS_MUST_NOT_EXCEED_CREDITS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_MUST_NOT_EXCEED_DEBITS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    asset: str
    debits_pending: str
    debits_posted: str
    credits_pending: str
    credits_posted: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    metadata: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, id: _Optional[str] = ..., asset: _Optional[str] = ..., debits_pending: _Optional[str] = ..., debits_posted: _Optional[str] = ..., credits_pending: _Optional[str] = ..., credits_posted: _Optional[str] = ..., debits_must_not_exceed_credits: _Optional[bool] = ..., credits_must_not_exceed_debits: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("request_id", "asset", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    DEBITS_MUST_NOT_EXCEED_CREDITS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_MUST_NOT_EXCEED_DEBITS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    asset: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., asset: _Optional[str] = ..., debits_must_not_exceed_credits: _Optional[bool] = ..., credits_must_not_exceed_debits: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "asset", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    asset: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., asset: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetAccountBalanceRequest(_message.Message):
    __slots__ = ("account_id", "as_of")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AccountBalance(_message.Message):
    __slots__ = ("account_id", "asset", "debits_pending", "debits_posted", "credits_pending", "credits_posted", "version", "as_of")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    DEBITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DEBITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    CREDITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    asset: str
    debits_pending: str
    debits_posted: str
    credits_pending: str
    credits_posted: str
    version: int
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., asset: _Optional[str] = ..., debits_pending: _Optional[str] = ..., debits_posted: _Optional[str] = ..., credits_pending: _Optional[str] = ..., credits_posted: _Optional[str] = ..., version: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("id", "transfer_id", "account_id", "side", "kind", "pending_change", "posted_change", "account_version", "debits_pending", "debits_posted", "credits_pending", "credits_posted", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PENDING_CHANGE_FIELD_NUMBER: _ClassVar[int]
    POSTED_CHANGE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEBITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DEBITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    CREDITS_PENDING_FIELD_NUMBER: _ClassVar[int]
    CREDITS_POSTED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    transfer_id: str
    account_id: str
    side: Side
    kind: TransferKind
    pending_change: str
    posted_change: str
    account_version: int
    debits_pending: str
    debits_posted: str
    credits_pending: str
    credits_posted: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., transfer_id: _Optional[str] = ..., account_id: _Optional[str] = ..., side: _Optional[_Union[Side, str]] = ..., kind: _Optional[_Union[TransferKind, str]] = ..., pending_change: _Optional[str] = ..., posted_change: _Optional[str] = ..., account_version: _Optional[int] = ..., debits_pending: _Optional[str] = ..., debits_posted: _Optional[str] = ..., credits_pending: _Optional[str] = ..., credits_posted: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAccountEntriesRequest(_message.Message):
    __slots__ = ("account_id", "page_size", "page_token", "start_time", "end_time")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_size: int
    page_token: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAccountEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("id", "request_id", "debit_account_id", "credit_account_id", "amount", "asset", "state", "pending_id", "created_at", "metadata", "kind", "expires_at", "reverses_transfer_id")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PENDING_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REVERSES_TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    debit_account_id: str
    credit_account_id: str
    amount: str
    asset: str
    state: TransferState
    pending_id: str
    created_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    kind: TransferKind
    expires_at: _timestamp_pb2.Timestamp
    reverses_transfer_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., debit_account_id: _Optional[str] = ..., credit_account_id: _Optional[str] = ..., amount: _Optional[str] = ..., asset: _Optional[str] = ..., state: _Optional[_Union[TransferState, str]] = ..., pending_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., kind: _Optional[_Union[TransferKind, str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reverses_transfer_id: _Optional[str] = ...) -> None: ...

class CreateTransferRequest(_message.Message):
    __slots__ = ("request_id", "debit_account_id", "credit_account_id", "amount", "asset", "pending", "timeout_seconds", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    debit_account_id: str
    credit_account_id: str
    amount: str
    asset: str
    pending: bool
    timeout_seconds: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., debit_account_id: _Optional[str] = ..., credit_account_id: _Optional[str] = ..., amount: _Optional[str] = ..., asset: _Optional[str] = ..., pending: _Optional[bool] = ..., timeout_seconds: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateTransfersRequest(_message.Message):
    __slots__ = ("request_id", "transfers", "atomic")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    transfers: _containers.RepeatedCompositeFieldContainer[CreateTransferRequest]
    atomic: bool
    def __init__(self, request_id: _Optional[str] = ..., transfers: _Optional[_Iterable[_Union[CreateTransferRequest, _Mapping]]] = ..., atomic: _Optional[bool] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "reason", "message", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TransferResult(_message.Message):
    __slots__ = ("transfer", "error")
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    transfer: Transfer
    error: Error
    def __init__(self, transfer: _Optional[_Union[Transfer, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class CreateTransfersResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TransferResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TransferResult, _Mapping]]] = ...) -> None: ...

class PostPendingTransferRequest(_message.Message):
    __slots__ = ("request_id", "pending_id", "amount", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    pending_id: str
    amount: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., pending_id: _Optional[str] = ..., amount: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class VoidPendingTransferRequest(_message.Message):
    __slots__ = ("request_id", "pending_id", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    pending_id: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., pending_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReverseTransferRequest(_message.Message):
    __slots__ = ("request_id", "transfer_id", "amount", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    transfer_id: str
    amount: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., transfer_id: _Optional[str] = ..., amount: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AdjustPendingTransferRequest(_message.Message):
    __slots__ = ("request_id", "pending_id", "amount", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    pending_id: str
    amount: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., pending_id: _Optional[str] = ..., amount: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("create_transfer", "post_pending", "void_pending", "reverse", "adjust_pending")
    CREATE_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    POST_PENDING_FIELD_NUMBER: _ClassVar[int]
    VOID_PENDING_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    ADJUST_PENDING_FIELD_NUMBER: _ClassVar[int]
    create_transfer: CreateTransferRequest
    post_pending: PostPendingTransferRequest
    void_pending: VoidPendingTransferRequest
    reverse: ReverseTransferRequest
    adjust_pending: AdjustPendingTransferRequest
    def __init__(self, create_transfer: _Optional[_Union[CreateTransferRequest, _Mapping]] = ..., post_pending: _Optional[_Union[PostPendingTransferRequest, _Mapping]] = ..., void_pending: _Optional[_Union[VoidPendingTransferRequest, _Mapping]] = ..., reverse: _Optional[_Union[ReverseTransferRequest, _Mapping]] = ..., adjust_pending: _Optional[_Union[AdjustPendingTransferRequest, _Mapping]] = ...) -> None: ...

class ApplyOperationsRequest(_message.Message):
    __slots__ = ("request_id", "operations", "atomic")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    atomic: bool
    def __init__(self, request_id: _Optional[str] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., atomic: _Optional[bool] = ...) -> None: ...

class ApplyOperationsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TransferResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TransferResult, _Mapping]]] = ...) -> None: ...

class GetTransferRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
