"""Validated, canonical forms of the webhook management requests, with their idempotency hashes.

Everything is checked before anything is written, so a malformed request changes nothing and is
never remembered under its request id (INVALID_ARGUMENT with a reason, like the core).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from ledger.v1 import webhooks_pb2
from ledger_server import validation as v
from ledger_server.commands import canonical_hash
from ledger_server.errors import invalid
from ledger_server.events.event_types import KNOWN_EVENT_TYPES
from ledger_server.events.webhooks.url_policy import UrlPolicy, UrlRefusedError

DESCRIPTION_CHARS_MAX = 256
GRACE_DEFAULT_S = 24 * 3600
GRACE_MAX_S = 7 * 24 * 3600
SEQUENCE_MAX = 2**63 - 1


@dataclass(frozen=True)
class CreateEndpoint:
    request_id: str
    url: str
    event_types: tuple[int, ...]
    description: str
    operation = "CreateWebhookEndpoint"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {
            "url": self.url, "event_types": list(self.event_types), "description": self.description,
        })


@dataclass(frozen=True)
class UpdateEndpoint:
    request_id: str
    endpoint_id: uuid.UUID
    url: str | None
    event_types: tuple[int, ...] | None
    description: str | None
    enabled: bool | None
    operation = "UpdateWebhookEndpoint"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {
            "id": str(self.endpoint_id), "url": self.url,
            "event_types": None if self.event_types is None else list(self.event_types),
            "description": self.description, "enabled": self.enabled,
        })


@dataclass(frozen=True)
class DisableEndpoint:
    request_id: str
    endpoint_id: uuid.UUID
    operation = "DisableWebhookEndpoint"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"id": str(self.endpoint_id)})


@dataclass(frozen=True)
class RotateSecret:
    request_id: str
    endpoint_id: uuid.UUID
    grace_s: int
    operation = "RotateWebhookSecret"

    def request_hash(self) -> bytes:
        return canonical_hash(self.operation, {"id": str(self.endpoint_id), "grace_s": self.grace_s})


@dataclass(frozen=True)
class Replay:
    """Exactly one target: a delivery, an endpoint's sequence range, or everything since a time."""

    request_id: str
    include_delivered: bool
    delivery_id: uuid.UUID | None = None
    endpoint_id: uuid.UUID | None = None
    from_sequence: int = 0
    to_sequence: int = SEQUENCE_MAX
    since: dt.datetime | None = None
    operation = "ReplayDeliveries"

    def request_hash(self) -> bytes:
        fields: dict[str, Any] = {
            "include_delivered": self.include_delivered,
            "delivery_id": None if self.delivery_id is None else str(self.delivery_id),
            "endpoint_id": None if self.endpoint_id is None else str(self.endpoint_id),
            "from": self.from_sequence, "to": self.to_sequence,
            "since": None if self.since is None else self.since.isoformat(),
        }
        return canonical_hash(self.operation, fields)


def event_types(values: Any, field: str = "event_types") -> tuple[int, ...]:
    """A set of known event types, sorted (their order never changes the request's meaning)."""
    types = set()
    for value in values:
        if value not in KNOWN_EVENT_TYPES:
            raise invalid("INVALID_EVENT_TYPE", f"unknown event type {value}", field=field)
        types.add(int(value))
    return tuple(sorted(types))


def url(value: str, policy: UrlPolicy) -> str:
    try:
        policy.check_url(value)
    except UrlRefusedError as refused:
        raise invalid(refused.reason, str(refused), field="url") from None
    return value


def description(value: str) -> str:
    if len(value) > DESCRIPTION_CHARS_MAX or "\x00" in value:
        raise invalid("INVALID_METADATA", f"description must be at most {DESCRIPTION_CHARS_MAX} characters",
                      field="description")
    return value


def create_endpoint(request: webhooks_pb2.CreateWebhookEndpointRequest, policy: UrlPolicy) -> CreateEndpoint:
    rid = v.request_id(request.request_id)
    if not request.url:
        raise invalid("MISSING_FIELD", "url is required", field="url")
    return CreateEndpoint(rid, url(request.url, policy), event_types(request.event_types),
                          description(request.description))


def update_endpoint(request: webhooks_pb2.UpdateWebhookEndpointRequest, policy: UrlPolicy) -> UpdateEndpoint:
    rid = v.request_id(request.request_id)
    endpoint_id = v.identifier(request.id, "id")
    return UpdateEndpoint(
        rid, endpoint_id,
        url(request.url, policy) if request.HasField("url") else None,
        event_types(request.event_types.event_types) if request.HasField("event_types") else None,
        description(request.description) if request.HasField("description") else None,
        request.enabled if request.HasField("enabled") else None,
    )


def disable_endpoint(request: webhooks_pb2.DisableWebhookEndpointRequest) -> DisableEndpoint:
    return DisableEndpoint(v.request_id(request.request_id), v.identifier(request.id, "id"))


def rotate_secret(request: webhooks_pb2.RotateWebhookSecretRequest) -> RotateSecret:
    rid = v.request_id(request.request_id)
    endpoint_id = v.identifier(request.id, "id")
    if request.grace_period_seconds > GRACE_MAX_S:
        raise invalid("INVALID_GRACE_PERIOD", f"grace_period_seconds must be at most {GRACE_MAX_S}",
                      field="grace_period_seconds")
    return RotateSecret(rid, endpoint_id, request.grace_period_seconds or GRACE_DEFAULT_S)


def replay(request: webhooks_pb2.ReplayDeliveriesRequest) -> Replay:
    rid = v.request_id(request.request_id)
    target = request.WhichOneof("target")
    if target == "delivery_id":
        return Replay(rid, request.include_delivered, delivery_id=v.identifier(request.delivery_id, "delivery_id"))
    if target == "endpoint_range":
        scope = request.endpoint_range
        to_sequence = scope.to_sequence or SEQUENCE_MAX
        if scope.from_sequence > to_sequence or to_sequence > SEQUENCE_MAX:
            raise invalid("INVALID_SEQUENCE_RANGE", "from_sequence must not exceed to_sequence",
                          field="endpoint_range")
        return Replay(rid, request.include_delivered, endpoint_id=v.identifier(scope.endpoint_id, "endpoint_id"),
                      from_sequence=scope.from_sequence, to_sequence=to_sequence)
    if target == "since":
        if not request.since.HasField("since"):
            raise invalid("MISSING_FIELD", "since.since is required", field="since")
        try:
            since = request.since.since.ToDatetime(tzinfo=dt.UTC)
        except (ValueError, OverflowError):
            raise invalid("INVALID_TIME_RANGE", "since is not a valid timestamp", field="since") from None
        endpoint_id = v.identifier(request.since.endpoint_id, "endpoint_id") if request.since.endpoint_id else None
        return Replay(rid, request.include_delivered, endpoint_id=endpoint_id, since=since)
    raise invalid("MISSING_FIELD", "one of delivery_id, endpoint_range or since is required", field="target")


def optional_endpoint(value: str) -> uuid.UUID | None:
    return v.identifier(value, "endpoint_id") if value else None
