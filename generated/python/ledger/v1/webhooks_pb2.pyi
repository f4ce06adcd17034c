import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from ledger.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WebhookEndpointState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_ENDPOINT_STATE_UNSPECIFIED: _ClassVar[WebhookEndpointState]
    WEBHOOK_ENDPOINT_STATE_ENABLED: _ClassVar[WebhookEndpointState]
    WEBHOOK_ENDPOINT_STATE_DISABLED: _ClassVar[WebhookEndpointState]

class WebhookDeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_DELIVERY_STATE_UNSPECIFIED: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_PENDING: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_DELIVERED: _ClassVar[WebhookDeliveryState]
    WEBHOOK_DELIVERY_DEAD: _ClassVar[WebhookDeliveryState]

class WebhookAttemptOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_ATTEMPT_OUTCOME_UNSPECIFIED: _ClassVar[WebhookAttemptOutcome]
    WEBHOOK_ATTEMPT_SUCCEEDED: _ClassVar[WebhookAttemptOutcome]
    WEBHOOK_ATTEMPT_HTTP_ERROR: _ClassVar[WebhookAttemptOutcome]
    WEBHOOK_ATTEMPT_TIMED_OUT: _ClassVar[WebhookAttemptOutcome]
    WEBHOOK_ATTEMPT_CONNECTION_FAILED: _ClassVar[WebhookAttemptOutcome]
    WEBHOOK_ATTEMPT_ADDRESS_REFUSED: _ClassVar[WebhookAttemptOutcome]
    WEBHOOK_ATTEMPT_ABANDONED: _ClassVar[WebhookAttemptOutcome]
WEBHOOK_ENDPOINT_STATE_UNSPECIFIED: WebhookEndpointState
WEBHOOK_ENDPOINT_STATE_ENABLED: WebhookEndpointState
WEBHOOK_ENDPOINT_STATE_DISABLED: WebhookEndpointState
WEBHOOK_DELIVERY_STATE_UNSPECIFIED: WebhookDeliveryState
WEBHOOK_DELIVERY_PENDING: WebhookDeliveryState
WEBHOOK_DELIVERY_DELIVERED: WebhookDeliveryState
WEBHOOK_DELIVERY_DEAD: WebhookDeliveryState
WEBHOOK_ATTEMPT_OUTCOME_UNSPECIFIED: WebhookAttemptOutcome
WEBHOOK_ATTEMPT_SUCCEEDED: WebhookAttemptOutcome
WEBHOOK_ATTEMPT_HTTP_ERROR: WebhookAttemptOutcome
WEBHOOK_ATTEMPT_TIMED_OUT: WebhookAttemptOutcome
WEBHOOK_ATTEMPT_CONNECTION_FAILED: WebhookAttemptOutcome
WEBHOOK_ATTEMPT_ADDRESS_REFUSED: WebhookAttemptOutcome
WEBHOOK_ATTEMPT_ABANDONED: WebhookAttemptOutcome

class WebhookEndpoint(_message.Message):
    __slots__ = ("id", "url", "event_types", "description", "state", "disabled_reason", "disabled_at", "failing_since", "start_after_sequence", "created_at", "updated_at", "secret")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    DISABLED_AT_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_FIELD_NUMBER: _ClassVar[int]
    START_AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[_events_pb2.EventType]
    description: str
    state: WebhookEndpointState
    disabled_reason: _events_pb2.WebhookDisabledReason
    disabled_at: _timestamp_pb2.Timestamp
    failing_since: _timestamp_pb2.Timestamp
    start_after_sequence: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    secret: str
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[_events_pb2.EventType, str]]] = ..., description: _Optional[str] = ..., state: _Optional[_Union[WebhookEndpointState, str]] = ..., disabled_reason: _Optional[_Union[_events_pb2.WebhookDisabledReason, str]] = ..., disabled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failing_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_after_sequence: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class CreateWebhookEndpointRequest(_message.Message):
    __slots__ = ("request_id", "url", "event_types", "description")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    url: str
    event_types: _containers.RepeatedScalarFieldContainer[_events_pb2.EventType]
    description: str
    def __init__(self, request_id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Iterable[_Union[_events_pb2.EventType, str]]] = ..., description: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhookEndpointsResponse(_message.Message):
    __slots__ = ("endpoints", "next_page_token")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[WebhookEndpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[WebhookEndpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EventTypeSet(_message.Message):
    __slots__ = ("event_types",)
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    event_types: _containers.RepeatedScalarFieldContainer[_events_pb2.EventType]
    def __init__(self, event_types: _Optional[_Iterable[_Union[_events_pb2.EventType, str]]] = ...) -> None: ...

class UpdateWebhookEndpointRequest(_message.Message):
    __slots__ = ("request_id", "id", "url", "event_types", "description", "enabled")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id: str
    url: str
    event_types: EventTypeSet
    description: str
    enabled: bool
    def __init__(self, request_id: _Optional[str] = ..., id: _Optional[str] = ..., url: _Optional[str] = ..., event_types: _Optional[_Union[EventTypeSet, _Mapping]] = ..., description: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class DisableWebhookEndpointRequest(_message.Message):
    __slots__ = ("request_id", "id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id: str
    def __init__(self, request_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("request_id", "id", "grace_period_seconds")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    id: str
    grace_period_seconds: int
    def __init__(self, request_id: _Optional[str] = ..., id: _Optional[str] = ..., grace_period_seconds: _Optional[int] = ...) -> None: ...

class WebhookAttempt(_message.Message):
    __slots__ = ("number", "started_at", "duration_ms", "status_code", "outcome", "error", "response_excerpt")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    number: int
    started_at: _timestamp_pb2.Timestamp
    duration_ms: int
    status_code: int
    outcome: WebhookAttemptOutcome
    error: str
    response_excerpt: str
    def __init__(self, number: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_ms: _Optional[int] = ..., status_code: _Optional[int] = ..., outcome: _Optional[_Union[WebhookAttemptOutcome, str]] = ..., error: _Optional[str] = ..., response_excerpt: _Optional[str] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("id", "endpoint_id", "sequence", "event_type", "state", "attempt_count", "next_attempt_at", "delivered_at", "dead_at", "dead_reason", "replay_count", "last_attempt", "created_at", "occurred_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_REASON_FIELD_NUMBER: _ClassVar[int]
    REPLAY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    endpoint_id: str
    sequence: int
    event_type: _events_pb2.EventType
    state: WebhookDeliveryState
    attempt_count: int
    next_attempt_at: _timestamp_pb2.Timestamp
    delivered_at: _timestamp_pb2.Timestamp
    dead_at: _timestamp_pb2.Timestamp
    dead_reason: str
    replay_count: int
    last_attempt: WebhookAttempt
    created_at: _timestamp_pb2.Timestamp
    occurred_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., sequence: _Optional[int] = ..., event_type: _Optional[_Union[_events_pb2.EventType, str]] = ..., state: _Optional[_Union[WebhookDeliveryState, str]] = ..., attempt_count: _Optional[int] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_reason: _Optional[str] = ..., replay_count: _Optional[int] = ..., last_attempt: _Optional[_Union[WebhookAttempt, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("endpoint_id", "page_size", "page_token")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    page_size: int
    page_token: str
    def __init__(self, endpoint_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SequenceRange(_message.Message):
    __slots__ = ("endpoint_id", "from_sequence", "to_sequence")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TO_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    from_sequence: int
    to_sequence: int
    def __init__(self, endpoint_id: _Optional[str] = ..., from_sequence: _Optional[int] = ..., to_sequence: _Optional[int] = ...) -> None: ...

class DeliveriesSince(_message.Message):
    __slots__ = ("since", "endpoint_id")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    endpoint_id: str
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., endpoint_id: _Optional[str] = ...) -> None: ...

class ReplayDeliveriesRequest(_message.Message):
    __slots__ = ("request_id", "delivery_id", "endpoint_range", "since", "include_delivered")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_RANGE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    delivery_id: str
    endpoint_range: SequenceRange
    since: DeliveriesSince
    include_delivered: bool
    def __init__(self, request_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., endpoint_range: _Optional[_Union[SequenceRange, _Mapping]] = ..., since: _Optional[_Union[DeliveriesSince, _Mapping]] = ..., include_delivered: _Optional[bool] = ...) -> None: ...

class ReplayDeliveriesResponse(_message.Message):
    __slots__ = ("replayed_count", "truncated")
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    truncated: bool
    def __init__(self, replayed_count: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ListDeliveryAttemptsRequest(_message.Message):
    __slots__ = ("delivery_id", "page_size", "page_token")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    page_size: int
    page_token: str
    def __init__(self, delivery_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeliveryAttemptsResponse(_message.Message):
    __slots__ = ("attempts", "next_page_token")
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[WebhookAttempt]
    next_page_token: str
    def __init__(self, attempts: _Optional[_Iterable[_Union[WebhookAttempt, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
