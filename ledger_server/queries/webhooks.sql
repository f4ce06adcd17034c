-- Named queries of the outbound webhooks (ledger_server/events/webhooks/). See docs/events.md.

-- ---- idempotency (idempotency.py) ----------------------------------------------------------------

-- name: lock_request_id
-- Serializes concurrent duplicates of one request id until the end of the transaction.
SELECT pg_advisory_xact_lock(%(class)s, hashtext(%(request_id)s))

-- name: load_outcome
SELECT operation, request_hash, grpc_code, outcome FROM request_outcomes WHERE request_id = %(request_id)s

-- name: insert_outcome
INSERT INTO request_outcomes (request_id, operation, request_hash, grpc_code, outcome, created_at)
VALUES (%(request_id)s, %(operation)s, %(request_hash)s, %(code)s, %(outcome)s, now())

-- ---- endpoints (endpoints.py) --------------------------------------------------------------------

-- name: insert_endpoint
-- A new endpoint receives the events committed after it: those above the current highest sequence.
INSERT INTO webhook_endpoints (id, url, description, event_types, state, start_after_sequence, created_at,
                               updated_at)
VALUES (%(id)s, %(url)s, %(description)s, %(event_types)s, 1,
        (SELECT coalesce(max(sequence), 0) FROM outbox), now(), now())
RETURNING id, url, description, event_types, state, disabled_reason, disabled_at, failing_since,
          start_after_sequence, created_at, updated_at

-- name: insert_secret
INSERT INTO webhook_secrets (endpoint_id, secret, request_id, created_at)
VALUES (%(endpoint_id)s, %(secret)s, %(request_id)s, now())

-- name: endpoint_for_update
SELECT id, url, description, event_types, state, disabled_reason, disabled_at, failing_since,
       start_after_sequence, created_at, updated_at
FROM webhook_endpoints WHERE id = %(id)s
FOR UPDATE

-- name: update_endpoint
-- NULL parameters leave a column unchanged.
UPDATE webhook_endpoints
SET url = coalesce(%(url)s, url),
    description = coalesce(%(description)s, description),
    event_types = coalesce(%(event_types)s::smallint[], event_types),
    updated_at = now()
WHERE id = %(id)s
RETURNING id, url, description, event_types, state, disabled_reason, disabled_at, failing_since,
          start_after_sequence, created_at, updated_at

-- name: enable_endpoint
-- Re-enabling forgets the failure streak; dead deliveries stay dead until replayed.
UPDATE webhook_endpoints
SET state = 1, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL, updated_at = now()
WHERE id = %(id)s
RETURNING id, url, description, event_types, state, disabled_reason, disabled_at, failing_since,
          start_after_sequence, created_at, updated_at

-- name: disable_endpoint
-- Only an enabled endpoint is disabled (a second disable changes nothing and emits nothing).
UPDATE webhook_endpoints
SET state = 2, disabled_reason = %(reason)s, disabled_at = now(), updated_at = now(),
    lease_token = NULL, lease_expires_at = '-infinity'
WHERE id = %(id)s AND state = 1
RETURNING id, url, description, event_types, state, disabled_reason, disabled_at, failing_since,
          start_after_sequence, created_at, updated_at

-- name: dead_letter_pending
-- When an endpoint is disabled its queue goes to the dead-letter list, replayable once re-enabled.
UPDATE webhook_deliveries
SET state = 3, dead_at = now(), dead_reason = %(reason)s
WHERE endpoint_id = %(id)s AND state = 1

-- name: insert_event
-- A non-ledger event (webhook endpoint disabled) in the same transaction as the change.
INSERT INTO outbox (event_type, account_ids, payload, created_at)
VALUES (%(event_type)s, '{}', %(payload)s, %(created_at)s)

-- name: expire_current_secrets
-- A rotation: every secret still signing keeps signing for the grace period, no longer.
UPDATE webhook_secrets
SET expires_at = now() + %(grace_s)s * interval '1 second'
WHERE endpoint_id = %(id)s AND (expires_at IS NULL OR expires_at > now() + %(grace_s)s * interval '1 second')

-- name: secret_of_request
-- The secret a request created, while it still signs (replays of Create and Rotate show it again).
SELECT secret FROM webhook_secrets
WHERE request_id = %(request_id)s AND (expires_at IS NULL OR expires_at > now())
ORDER BY id DESC
LIMIT 1

-- name: signing_secrets
-- The secrets that sign a request to this endpoint now, newest first.
SELECT secret FROM webhook_secrets
WHERE endpoint_id = %(id)s AND (expires_at IS NULL OR expires_at > now())
ORDER BY id DESC

-- name: list_endpoints
SELECT id, url, description, event_types, state, disabled_reason, disabled_at, failing_since,
       start_after_sequence, created_at, updated_at
FROM webhook_endpoints
WHERE (created_at, id) > (%(after_time)s, %(after_id)s)
ORDER BY created_at, id
LIMIT %(limit)s

-- name: notify_dispatchers
-- Wakes the dispatchers at commit (work became due: a replay, a re-enabled endpoint).
SELECT pg_notify('ledger_webhooks', '')

-- ---- deliveries (deliveries.py) ------------------------------------------------------------------

-- name: list_dead_letters
SELECT d.id, d.endpoint_id, d.sequence, d.event_type, d.state, d.attempt_count, d.next_attempt_at,
       d.delivered_at, d.dead_at, d.dead_reason, d.replay_count, d.created_at, d.occurred_at,
       a.number, a.started_at, a.duration_ms, a.status_code, a.outcome, a.error, a.response_excerpt
FROM webhook_deliveries d
LEFT JOIN LATERAL (
    SELECT * FROM webhook_attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1
) a ON true
WHERE d.state = 3
  AND (%(endpoint_id)s::uuid IS NULL OR d.endpoint_id = %(endpoint_id)s::uuid)
  AND (d.sequence, d.endpoint_id) > (%(after_sequence)s, %(after_endpoint)s::uuid)
ORDER BY d.sequence, d.endpoint_id
LIMIT %(limit)s

-- name: list_attempts
SELECT id, number, started_at, duration_ms, status_code, outcome, error, response_excerpt
FROM webhook_attempts
WHERE delivery_id = %(delivery_id)s AND id > %(after)s
ORDER BY id
LIMIT %(limit)s

-- name: delivery_exists
SELECT state, endpoint_id FROM webhook_deliveries WHERE id = %(id)s

-- name: endpoint_state
SELECT state FROM webhook_endpoints WHERE id = %(id)s

-- name: replay_one
-- A replay starts a new cycle of the retry schedule; the delivery keeps its id (webhook-id).
UPDATE webhook_deliveries
SET state = 1, cycle_attempts = 0, next_attempt_at = now(), replay_count = replay_count + 1
WHERE id = %(id)s AND state <> 1

-- name: replay_range
-- Dead (and with include_delivered, delivered) deliveries of an endpoint in a sequence range, and
-- the events of that range it never got (it was disabled then): at most `limit`, oldest first.
-- Never beyond the fan-out cursor: later events are fanned out normally, in order.
WITH endpoint AS (
    SELECT id, event_types, start_after_sequence FROM webhook_endpoints WHERE id = %(endpoint_id)s AND state = 1
),
targets AS (
    SELECT endpoint.id AS endpoint_id, o.sequence, o.event_type, o.created_at
    FROM endpoint
    JOIN outbox o ON o.sequence > endpoint.start_after_sequence
                 AND (cardinality(endpoint.event_types) = 0 OR o.event_type = ANY (endpoint.event_types))
    LEFT JOIN webhook_deliveries d ON d.endpoint_id = endpoint.id AND d.sequence = o.sequence
    WHERE o.sequence BETWEEN %(from_sequence)s AND %(to_sequence)s
      AND o.sequence <= (SELECT last_sequence FROM webhook_fanout_cursor WHERE id = 1)
      AND (d.id IS NULL OR d.state = 3 OR (%(include_delivered)s AND d.state = 2))
    ORDER BY o.sequence
    LIMIT %(limit)s
)
INSERT INTO webhook_deliveries AS d (id, endpoint_id, sequence, event_type, occurred_at, state, next_attempt_at,
                                     created_at)
SELECT gen_random_uuid(), endpoint_id, sequence, event_type, created_at, 1, now(), now() FROM targets
ON CONFLICT (endpoint_id, sequence) DO UPDATE
SET state = 1, cycle_attempts = 0, next_attempt_at = now(), replay_count = d.replay_count + 1
WHERE d.state <> 1

-- name: replay_since
-- Dead (and with include_delivered, delivered) deliveries of events since a time, to enabled
-- endpoints (one, or all): at most `limit`, oldest first.
WITH targets AS (
    SELECT d.id FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.state = 1
    WHERE d.occurred_at >= %(since)s
      AND (%(endpoint_id)s::uuid IS NULL OR d.endpoint_id = %(endpoint_id)s::uuid)
      AND (d.state = 3 OR (%(include_delivered)s AND d.state = 2))
    ORDER BY d.sequence, d.endpoint_id
    LIMIT %(limit)s
)
UPDATE webhook_deliveries d
SET state = 1, cycle_attempts = 0, next_attempt_at = now(), replay_count = d.replay_count + 1
FROM targets WHERE d.id = targets.id

-- ---- fan-out (fanout.py) -------------------------------------------------------------------------

-- name: lock_fanout_cursor
-- Only one dispatcher fans out at a time; the others skip the step.
SELECT last_sequence FROM webhook_fanout_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED

-- name: fan_out
-- One delivery per enabled endpoint subscribed to each event in (after, upto].
INSERT INTO webhook_deliveries (id, endpoint_id, sequence, event_type, occurred_at, state, next_attempt_at,
                                created_at)
SELECT gen_random_uuid(), e.id, o.sequence, o.event_type, o.created_at, 1, now(), now()
FROM outbox o
JOIN webhook_endpoints e
  ON e.state = 1 AND o.sequence > e.start_after_sequence
 AND (cardinality(e.event_types) = 0 OR o.event_type = ANY (e.event_types))
WHERE o.sequence > %(after)s AND o.sequence <= %(upto)s
ORDER BY o.sequence, e.id
ON CONFLICT (endpoint_id, sequence) DO NOTHING

-- name: advance_fanout_cursor
UPDATE webhook_fanout_cursor SET last_sequence = %(upto)s, updated_at = now() WHERE id = 1 AND last_sequence = %(after)s

-- ---- dispatch (dispatcher.py, delivery_worker.py) -------------------------------------------------

-- name: claim_endpoints
-- Leases up to `limit` enabled endpoints whose queue head is due and whose lease is free (or
-- expired: its dispatcher died). Least recently served first. SKIP LOCKED: dispatchers never wait
-- for each other and never take the same endpoint.
WITH due AS (
    SELECT e.id
    FROM webhook_endpoints e
    WHERE e.state = 1 AND e.lease_expires_at < now()
      AND (SELECT d.next_attempt_at FROM webhook_deliveries d
           WHERE d.endpoint_id = e.id AND d.state = 1
           ORDER BY d.sequence LIMIT 1) <= now()
    ORDER BY e.lease_expires_at, e.id
    LIMIT %(limit)s
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE webhook_endpoints e
SET lease_token = %(token)s, lease_expires_at = now() + %(lease_s)s * interval '1 second'
FROM due WHERE e.id = due.id
RETURNING e.id

-- name: seconds_until_next_due
-- Until the earliest queue head of an enabled endpoint becomes due (or its lease expires); NULL if
-- no endpoint has anything pending.
SELECT extract(epoch FROM min(greatest(head.next_attempt_at, e.lease_expires_at)) - now())
FROM webhook_endpoints e
CROSS JOIN LATERAL (
    SELECT d.next_attempt_at FROM webhook_deliveries d
    WHERE d.endpoint_id = e.id AND d.state = 1 ORDER BY d.sequence LIMIT 1
) head
WHERE e.state = 1

-- name: leased_endpoint
-- The endpoint, if this lease still holds it (locks the row until the end of the transaction).
SELECT url, failing_since FROM webhook_endpoints
WHERE id = %(id)s AND lease_token = %(token)s AND state = 1 AND lease_expires_at > now()
FOR UPDATE

-- name: queue_head
-- The lowest pending delivery of the endpoint and the event it carries.
SELECT d.id, d.sequence, d.attempt_count, d.cycle_attempts, d.next_attempt_at <= now() AS due,
       d.attempt_started_at, o.payload
FROM webhook_deliveries d
JOIN outbox o ON o.sequence = d.sequence
WHERE d.endpoint_id = %(id)s AND d.state = 1
ORDER BY d.sequence
LIMIT 1
FOR UPDATE OF d

-- name: start_attempt
UPDATE webhook_deliveries
SET attempt_count = attempt_count + 1, cycle_attempts = cycle_attempts + 1, attempt_started_at = now()
WHERE id = %(id)s
RETURNING attempt_count, cycle_attempts, attempt_started_at

-- name: insert_attempt
INSERT INTO webhook_attempts (delivery_id, number, started_at, duration_ms, status_code, outcome, error,
                              response_excerpt, created_at)
VALUES (%(delivery_id)s, %(number)s, %(started_at)s, %(duration_ms)s, %(status_code)s, %(outcome)s, %(error)s,
        %(excerpt)s, now())

-- name: mark_delivered
-- A 2xx is a fact whoever holds the lease: the first one sets delivered_at.
UPDATE webhook_deliveries
SET state = 2, delivered_at = coalesce(delivered_at, now()), attempt_started_at = NULL
WHERE id = %(id)s AND state IN (1, 3)

-- name: schedule_retry
UPDATE webhook_deliveries
SET next_attempt_at = now() + %(delay_s)s * interval '1 second', attempt_started_at = NULL
WHERE id = %(id)s AND state = 1

-- name: mark_dead
UPDATE webhook_deliveries
SET state = 3, dead_at = now(), dead_reason = %(reason)s, attempt_started_at = NULL
WHERE id = %(id)s AND state = 1

-- name: endpoint_succeeded
UPDATE webhook_endpoints SET failing_since = NULL WHERE id = %(id)s AND failing_since IS NOT NULL

-- name: endpoint_failed
-- Starts the failure streak at the first failed attempt; returns its start.
UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, %(started_at)s)
WHERE id = %(id)s
RETURNING failing_since, failing_since <= now() - %(disable_after_s)s * interval '1 second' AS failing_too_long

-- name: renew_lease
UPDATE webhook_endpoints SET lease_expires_at = now() + %(lease_s)s * interval '1 second'
WHERE id = %(id)s AND lease_token = %(token)s AND state = 1 AND lease_expires_at > now()

-- name: release_lease
UPDATE webhook_endpoints SET lease_token = NULL, lease_expires_at = now()
WHERE id = %(id)s AND lease_token = %(token)s

-- name: purge_expired
-- Retention: final deliveries (and their attempts) with no activity for `retention_s`, in bounded
-- batches. The retention trigger refuses anything younger than the 30-day floor.
WITH old AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.state IN (2, 3) AND d.created_at < now() - %(retention_s)s * interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM webhook_attempts a
                      WHERE a.delivery_id = d.id AND a.created_at >= now() - %(retention_s)s * interval '1 second')
    LIMIT %(limit)s
),
attempts AS (
    DELETE FROM webhook_attempts a USING old WHERE a.delivery_id = old.id
)
DELETE FROM webhook_deliveries d USING old WHERE d.id = old.id
