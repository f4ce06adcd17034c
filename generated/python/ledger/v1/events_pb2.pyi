import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    ASSET_CREATED: _ClassVar[EventType]
    ACCOUNT_CREATED: _ClassVar[EventType]
    TRANSFER_POSTED: _ClassVar[EventType]
    HOLD_CREATED: _ClassVar[EventType]
    HOLD_POSTED: _ClassVar[EventType]
    HOLD_VOIDED: _ClassVar[EventType]
    HOLD_EXPIRED: _ClassVar[EventType]
    TRANSFER_REVERSED: _ClassVar[EventType]
    HOLD_ADJUSTED: _ClassVar[EventType]
    WEBHOOK_ENDPOINT_DISABLED: _ClassVar[EventType]

class WebhookDisabledReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_DISABLED_REASON_UNSPECIFIED: _ClassVar[WebhookDisabledReason]
    WEBHOOK_DISABLED_MANUALLY: _ClassVar[WebhookDisabledReason]
    WEBHOOK_DISABLED_GONE: _ClassVar[WebhookDisabledReason]
    WEBHOOK_DISABLED_FAILING: _ClassVar[WebhookDisabledReason]
EVENT_TYPE_UNSPECIFIED: EventType
ASSET_CREATED: EventType
ACCOUNT_CREATED: EventType
TRANSFER_POSTED: EventType
HOLD_CREATED: EventType
HOLD_POSTED: EventType
HOLD_VOIDED: EventType
HOLD_EXPIRED: EventType
TRANSFER_REVERSED: EventType
HOLD_ADJUSTED: EventType
WEBHOOK_ENDPOINT_DISABLED: EventType
WEBHOOK_DISABLED_REASON_UNSPECIFIED: WebhookDisabledReason
WEBHOOK_DISABLED_MANUALLY: WebhookDisabledReason
WEBHOOK_DISABLED_GONE: WebhookDisabledReason
WEBHOOK_DISABLED_FAILING: WebhookDisabledReason

class LedgerEvent(_message.Message):
    __slots__ = ("sequence", "type", "occurred_at", "account_ids", "asset", "account", "transfer", "webhook_endpoint_disabled")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_IDS_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ENDPOINT_DISABLED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: EventType
    occurred_at: _timestamp_pb2.Timestamp
    account_ids: _containers.RepeatedScalarFieldContainer[str]
    asset: _ledger_pb2.Asset
    account: _ledger_pb2.Account
    transfer: _ledger_pb2.Transfer
    webhook_endpoint_disabled: WebhookEndpointDisabled
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., account_ids: _Optional[_Iterable[str]] = ..., asset: _Optional[_Union[_ledger_pb2.Asset, _Mapping]] = ..., account: _Optional[_Union[_ledger_pb2.Account, _Mapping]] = ..., transfer: _Optional[_Union[_ledger_pb2.Transfer, _Mapping]] = ..., webhook_endpoint_disabled: _Optional[_Union[WebhookEndpointDisabled, _Mapping]] = ...) -> None: ...

class WebhookEndpointDisabled(_message.Message):
    __slots__ = ("endpoint_id", "url", "reason", "failing_since")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    url: str
    reason: WebhookDisabledReason
    failing_since: _timestamp_pb2.Timestamp
    def __init__(self, endpoint_id: _Optional[str] = ..., url: _Optional[str] = ..., reason: _Optional[_Union[WebhookDisabledReason, str]] = ..., failing_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("after_sequence", "event_types", "account_ids")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_IDS_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    event_types: _containers.RepeatedScalarFieldContainer[EventType]
    account_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, after_sequence: _Optional[int] = ..., event_types: _Optional[_Iterable[_Union[EventType, str]]] = ..., account_ids: _Optional[_Iterable[str]] = ...) -> None: ...
