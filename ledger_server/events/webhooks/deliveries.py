"""Deliveries for support and recovery: the dead-letter list, replays, and the attempts of one.

A replay puts deliveries back in their endpoint's queue with a fresh retry schedule and the same
id (the `webhook-id` receivers dedupe by). The queue is ordered by sequence, so replayed events are
delivered in order among themselves and before newer pending ones.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ledger.v1 import webhooks_pb2
from ledger_server import pagination, queries
from ledger_server.errors import not_found, rejected
from ledger_server.events.webhooks import records
from ledger_server.events.webhooks import requests as r

Q = queries.load("webhooks")

REPLAY_ROWS_MAX = 10_000
ENABLED_STATE = 1
PENDING_STATE = 1


def list_dead_letters(
    pool: ConnectionPool[Any], endpoint_id: uuid.UUID | None, page_size: int, token: str
) -> webhooks_pb2.ListDeadLettersResponse:
    query = ["dead_letters", None if endpoint_id is None else str(endpoint_id)]
    after_sequence, after_endpoint = pagination.decode(token, query, _dead_letter_key) or (0, uuid.UUID(int=0))
    with pool.connection() as conn:
        rows = conn.execute(Q["list_dead_letters"], {
            "endpoint_id": endpoint_id, "after_sequence": after_sequence, "after_endpoint": after_endpoint,
            "limit": page_size + 1,
        }).fetchall()
    response = webhooks_pb2.ListDeadLettersResponse(deliveries=[records.delivery(row) for row in rows[:page_size]])
    if len(rows) > page_size:
        last = rows[page_size - 1]
        response.next_page_token = pagination.encode([last[2], str(last[1])], query)
    return response


def list_attempts(
    pool: ConnectionPool[Any], delivery_id: uuid.UUID, page_size: int, token: str
) -> webhooks_pb2.ListDeliveryAttemptsResponse:
    query = ["attempts", str(delivery_id)]
    after = pagination.decode(token, query, pagination.int_key) or 0
    with pool.connection() as conn:
        exists = conn.execute(Q["delivery_exists"], {"id": delivery_id}).fetchone() is not None
        rows = conn.execute(Q["list_attempts"], {
            "delivery_id": delivery_id, "after": after, "limit": page_size + 1,
        }).fetchall()
    if not exists:
        raise not_found("no such delivery", delivery_id=str(delivery_id))
    attempts = [records.attempt(row[1:]) for row in rows[:page_size]]
    response = webhooks_pb2.ListDeliveryAttemptsResponse(attempts=attempts)
    if len(rows) > page_size:
        response.next_page_token = pagination.encode(rows[page_size - 1][0], query)
    return response


def _dead_letter_key(after: Any) -> tuple[int, uuid.UUID]:
    """[sequence, endpoint_id] of the last dead letter of the previous page (ValueError if malformed)."""
    if not isinstance(after, list) or len(after) != 2:
        raise ValueError("not a page key")
    return pagination.int_key(after[0]), pagination.uuid_key(after[1])


def replay(conn: psycopg.Connection[Any], cmd: r.Replay) -> bytes:
    """Queue the deliveries the command names (inside the idempotency transaction)."""
    if cmd.delivery_id is not None:
        count = _replay_one(conn, cmd.delivery_id)
        truncated = False
    elif cmd.since is None:
        assert cmd.endpoint_id is not None
        _require_enabled(conn, cmd.endpoint_id)
        count = conn.execute(Q["replay_range"], {
            "endpoint_id": cmd.endpoint_id, "from_sequence": cmd.from_sequence, "to_sequence": cmd.to_sequence,
            "include_delivered": cmd.include_delivered, "limit": REPLAY_ROWS_MAX,
        }).rowcount
        truncated = count >= REPLAY_ROWS_MAX
    else:
        if cmd.endpoint_id is not None:
            _require_enabled(conn, cmd.endpoint_id)
        count = conn.execute(Q["replay_since"], {
            "since": cmd.since, "endpoint_id": cmd.endpoint_id, "include_delivered": cmd.include_delivered,
            "limit": REPLAY_ROWS_MAX,
        }).rowcount
        truncated = count >= REPLAY_ROWS_MAX
    if count:
        conn.execute(Q["notify_dispatchers"])
    return webhooks_pb2.ReplayDeliveriesResponse(replayed_count=count, truncated=truncated).SerializeToString()


def _replay_one(conn: psycopg.Connection[Any], delivery_id: uuid.UUID) -> int:
    row = conn.execute(Q["delivery_exists"], {"id": delivery_id}).fetchone()
    if row is None:
        raise rejected("DELIVERY_NOT_FOUND", "no such delivery", delivery_id=str(delivery_id))
    state, endpoint_id = row
    if state == PENDING_STATE:
        raise rejected("DELIVERY_PENDING", "the delivery is already queued", delivery_id=str(delivery_id))
    _require_enabled(conn, endpoint_id)
    return int(conn.execute(Q["replay_one"], {"id": delivery_id}).rowcount)


def _require_enabled(conn: psycopg.Connection[Any], endpoint_id: uuid.UUID) -> None:
    row = conn.execute(Q["endpoint_state"], {"id": endpoint_id}).fetchone()
    if row is None:
        raise rejected("WEBHOOK_ENDPOINT_NOT_FOUND", "no such webhook endpoint", endpoint_id=str(endpoint_id))
    if row[0] != ENABLED_STATE:
        raise rejected("WEBHOOK_ENDPOINT_NOT_ENABLED", "enable the endpoint before replaying to it",
                       endpoint_id=str(endpoint_id))
