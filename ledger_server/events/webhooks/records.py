"""Database rows of the webhook tables <-> ledger.v1 webhook messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ledger.v1 import webhooks_pb2
from ledger_server.wire import timestamp

ENDPOINT_COLUMNS = 11  # the RETURNING / SELECT list of the endpoint queries in webhooks.sql


def _set_time(message: Any, field: str, value: dt.datetime | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(timestamp(value))


def endpoint(row: tuple[Any, ...], secret: str = "") -> webhooks_pb2.WebhookEndpoint:
    assert len(row) == ENDPOINT_COLUMNS, row
    (eid, url, description, event_types, state, disabled_reason, disabled_at, failing_since, start_after,
     created_at, updated_at) = row
    message = webhooks_pb2.WebhookEndpoint(
        id=str(eid), url=url, description=description, event_types=list(event_types), state=state,
        start_after_sequence=start_after, secret=secret, created_at=timestamp(created_at),
        updated_at=timestamp(updated_at),
    )
    message.disabled_reason = disabled_reason or 0  # type: ignore[assignment]
    _set_time(message, "disabled_at", disabled_at)
    _set_time(message, "failing_since", failing_since)
    return message


def attempt(row: tuple[Any, ...]) -> webhooks_pb2.WebhookAttempt:
    number, started_at, duration_ms, status_code, outcome, error, excerpt = row
    return webhooks_pb2.WebhookAttempt(
        number=number, started_at=timestamp(started_at), duration_ms=duration_ms, status_code=status_code,
        outcome=outcome, error=error, response_excerpt=excerpt,
    )


def delivery(row: tuple[Any, ...]) -> webhooks_pb2.WebhookDelivery:
    """A row of list_dead_letters: the delivery's 13 columns, then its last attempt's 7 (or NULLs)."""
    (did, endpoint_id, sequence, event_type, state, attempt_count, next_attempt_at, delivered_at, dead_at,
     dead_reason, replay_count, created_at, occurred_at) = row[:13]
    message = webhooks_pb2.WebhookDelivery(
        id=str(did), endpoint_id=str(endpoint_id), sequence=sequence, event_type=event_type, state=state,
        attempt_count=attempt_count, dead_reason=dead_reason or "", replay_count=replay_count,
        created_at=timestamp(created_at), occurred_at=timestamp(occurred_at),
    )
    _set_time(message, "next_attempt_at", next_attempt_at)
    _set_time(message, "delivered_at", delivered_at)
    _set_time(message, "dead_at", dead_at)
    if row[13] is not None:
        message.last_attempt.CopyFrom(attempt(row[13:20]))
    return message
