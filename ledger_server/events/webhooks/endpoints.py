"""Webhook endpoints: create, update, enable, disable, rotate secrets, list.

Each mutation runs inside the idempotency transaction (idempotency.run_once) and returns the
endpoint without its secret: secrets are never stored in request_outcomes (kept forever). The
service adds the secret a request created to its response and replays (`secret_of_request`).
Disabling, by an operator or by the dispatcher, dead-letters the endpoint's queue and writes a
WEBHOOK_ENDPOINT_DISABLED event to the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ledger.v1 import events_pb2, webhooks_pb2
from ledger_server import pagination, queries
from ledger_server.errors import LedgerError, rejected
from ledger_server.events.webhooks import records
from ledger_server.events.webhooks import requests as r
from ledger_server.events.webhooks.signing import new_secret
from ledger_server.ids import new_uuid7
from ledger_server.wire import timestamp

Q = queries.load("webhooks")

DISABLED_STATE = 2
DEAD_REASONS: dict[int, str] = {
    events_pb2.WEBHOOK_DISABLED_MANUALLY: "endpoint disabled",
    events_pb2.WEBHOOK_DISABLED_GONE: "endpoint disabled: the receiver answered 410 Gone",
    events_pb2.WEBHOOK_DISABLED_FAILING: "endpoint disabled: failing for too long",
}


def _not_found(endpoint_id: uuid.UUID) -> LedgerError:
    return rejected("WEBHOOK_ENDPOINT_NOT_FOUND", "no such webhook endpoint", endpoint_id=str(endpoint_id))


def _locked(conn: psycopg.Connection[Any], endpoint_id: uuid.UUID) -> tuple[Any, ...]:
    row: tuple[Any, ...] | None = conn.execute(Q["endpoint_for_update"], {"id": endpoint_id}).fetchone()
    if row is None:
        raise _not_found(endpoint_id)
    return row


def create(conn: psycopg.Connection[Any], cmd: r.CreateEndpoint) -> bytes:
    row = conn.execute(Q["insert_endpoint"], {
        "id": new_uuid7(), "url": cmd.url, "description": cmd.description, "event_types": list(cmd.event_types),
    }).fetchone()
    assert row is not None
    conn.execute(Q["insert_secret"], {"endpoint_id": row[0], "secret": new_secret(), "request_id": cmd.request_id})
    return records.endpoint(row).SerializeToString()


def update(conn: psycopg.Connection[Any], cmd: r.UpdateEndpoint) -> bytes:
    _locked(conn, cmd.endpoint_id)
    row = conn.execute(Q["update_endpoint"], {
        "id": cmd.endpoint_id, "url": cmd.url, "description": cmd.description,
        "event_types": None if cmd.event_types is None else list(cmd.event_types),
    }).fetchone()
    assert row is not None
    state = row[4]
    if cmd.enabled is True and state == DISABLED_STATE:
        row = conn.execute(Q["enable_endpoint"], {"id": cmd.endpoint_id}).fetchone()
        conn.execute(Q["notify_dispatchers"])
    elif cmd.enabled is False and state != DISABLED_STATE:
        row = disable(conn, cmd.endpoint_id, events_pb2.WEBHOOK_DISABLED_MANUALLY)
    assert row is not None
    return records.endpoint(row).SerializeToString()


def disable_by_request(conn: psycopg.Connection[Any], cmd: r.DisableEndpoint) -> bytes:
    row = _locked(conn, cmd.endpoint_id)
    if row[4] != DISABLED_STATE:
        disabled = disable(conn, cmd.endpoint_id, events_pb2.WEBHOOK_DISABLED_MANUALLY)
        assert disabled is not None
        row = disabled
    return records.endpoint(row).SerializeToString()


def disable(
    conn: psycopg.Connection[Any], endpoint_id: uuid.UUID, reason: int, failing_since: dt.datetime | None = None
) -> tuple[Any, ...] | None:
    """Disable an enabled endpoint: dead-letter its queue, emit the event. None if it was not enabled."""
    assert reason in DEAD_REASONS
    row: tuple[Any, ...] | None = conn.execute(Q["disable_endpoint"], {"id": endpoint_id, "reason": reason}).fetchone()
    if row is None:
        return None
    conn.execute(Q["dead_letter_pending"], {"id": endpoint_id, "reason": DEAD_REASONS[reason]})
    disabled_at = row[6]
    payload = events_pb2.WebhookEndpointDisabled(endpoint_id=str(endpoint_id), url=row[1], reason=reason)  # type: ignore[arg-type]
    if failing_since is not None:
        payload.failing_since.CopyFrom(timestamp(failing_since))
    event = events_pb2.LedgerEvent(
        type=events_pb2.WEBHOOK_ENDPOINT_DISABLED, occurred_at=timestamp(disabled_at), webhook_endpoint_disabled=payload
    )
    conn.execute(Q["insert_event"], {
        "event_type": events_pb2.WEBHOOK_ENDPOINT_DISABLED, "payload": event.SerializeToString(),
        "created_at": disabled_at,
    })
    return row


def rotate_secret(conn: psycopg.Connection[Any], cmd: r.RotateSecret) -> bytes:
    row = _locked(conn, cmd.endpoint_id)
    conn.execute(Q["expire_current_secrets"], {"id": cmd.endpoint_id, "grace_s": cmd.grace_s})
    conn.execute(Q["insert_secret"], {
        "endpoint_id": cmd.endpoint_id, "secret": new_secret(), "request_id": cmd.request_id,
    })
    return records.endpoint(row).SerializeToString()


def secret_of_request(pool: ConnectionPool[Any], request_id: str) -> str:
    """The secret created by this request while it still signs; '' once it expired."""
    with pool.connection() as conn:
        row = conn.execute(Q["secret_of_request"], {"request_id": request_id}).fetchone()
    return "" if row is None else str(row[0])


def list_endpoints(pool: ConnectionPool[Any], page_size: int, token: str) -> webhooks_pb2.ListWebhookEndpointsResponse:
    query = ["webhook_endpoints"]
    after_time, after_id = pagination.decode(token, query, _page_key) or _FIRST_PAGE
    with pool.connection() as conn:
        rows = conn.execute(Q["list_endpoints"], {
            "after_time": after_time, "after_id": after_id, "limit": page_size + 1,
        }).fetchall()
    response = webhooks_pb2.ListWebhookEndpointsResponse(endpoints=[records.endpoint(row) for row in rows[:page_size]])
    if len(rows) > page_size:
        last = rows[page_size - 1]
        response.next_page_token = pagination.encode([last[9].isoformat(), str(last[0])], query)
    return response


_FIRST_PAGE = (dt.datetime.min.replace(tzinfo=dt.UTC), uuid.UUID(int=0))


def _page_key(after: Any) -> tuple[dt.datetime, uuid.UUID]:
    """[created_at, id] of the last endpoint of the previous page (ValueError if malformed)."""
    if not isinstance(after, list) or len(after) != 2:
        raise ValueError("not a page key")
    created_at = dt.datetime.fromisoformat(pagination.text_key(after[0]))
    if created_at.tzinfo is None:
        raise ValueError("not a page key")
    return created_at, pagination.uuid_key(after[1])
