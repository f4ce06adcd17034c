"""The event types (ledger.v1.EventType) and their webhook names ("transfer.posted")."""

from __future__ import annotations

from ledger.v1 import events_pb2

KNOWN_EVENT_TYPES = frozenset(value for value in events_pb2.EventType.values() if value != 0)


def event_type_name(event_type: int) -> str:
    """ACCOUNT_CREATED -> "account.created", WEBHOOK_ENDPOINT_DISABLED -> "webhook_endpoint.disabled"."""
    name = events_pb2.EventType.Name(event_type)
    subject, _, verb = name.lower().rpartition("_")
    return f"{subject}.{verb}"
