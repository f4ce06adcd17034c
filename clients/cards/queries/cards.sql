-- Named queries of the card gateway (ledger_cards). Tables: ledger_server/migrations/0006_cards.sql.

-- name: program_accounts
SELECT role, account_id::text FROM card_program_accounts WHERE asset = %(asset)s;

-- name: insert_program_account
-- Concurrent replicas may race to create the program: the first row wins; the ledger account was
-- created with a deterministic request id, so both raced to the same account anyway.
INSERT INTO card_program_accounts (asset, role, account_id)
VALUES (%(asset)s, %(role)s, %(account_id)s)
ON CONFLICT (asset, role) DO NOTHING;

-- name: insert_card
INSERT INTO cards (id, token, account_id, asset, tenant, daily_limit, monthly_limit, blocked_mccs, metadata)
VALUES (%(id)s, %(token)s, %(account_id)s, %(asset)s, %(tenant)s, %(daily_limit)s, %(monthly_limit)s,
        %(blocked_mccs)s, %(metadata)s)
ON CONFLICT (token) DO NOTHING
RETURNING id::text;

-- name: card_by_token
SELECT id::text, token, account_id::text, asset, state, daily_limit::text, monthly_limit::text, blocked_mccs,
       tenant, metadata, version
FROM cards WHERE token = %(token)s;

-- name: card_by_id
SELECT id::text, token, account_id::text, asset, state, daily_limit::text, monthly_limit::text, blocked_mccs,
       tenant, metadata, version
FROM cards WHERE id = %(id)s;

-- name: set_card_state
-- Closing is final (also enforced by a trigger); freezing a closed card changes nothing.
UPDATE cards SET state = %(state)s, updated_at = now()
WHERE id = %(id)s AND state <> 3
RETURNING id::text;

-- name: set_card_controls
UPDATE cards SET daily_limit = %(daily_limit)s, monthly_limit = %(monthly_limit)s,
                 blocked_mccs = %(blocked_mccs)s, updated_at = now()
WHERE id = %(id)s AND state <> 3
RETURNING id::text;

-- name: authorization_contexts
-- For every authorization that queued meanwhile, in one round trip (ledger_cards/coalescer.py):
-- whether its signed message is new (marked in card_seen_messages now; a replay finds it there),
-- its card and any earlier answer to the same authorization token. Row `i` answers the i-th
-- element of the JSON array [card token, authorization token, message key]; the caller sends each
-- message key once per batch, and the keys are inserted in order, so two gateways marking the same
-- keys wait for each other in one order. Each lookup is a LATERAL subquery with LIMIT 1 (the keys
-- are unique): that keeps it a primary-key lookup per element. Written as plain joins, the planner
-- hashed whole tables for the array (a sequential scan of every authorization ever answered, per
-- batch: measured 830 rows read per authorization and growing).
WITH q AS (
    SELECT e ->> 0 AS card_token, e ->> 1 AS token, e ->> 2 AS message_key, i
    FROM jsonb_array_elements(%(lookups)s::jsonb) WITH ORDINALITY AS q (e, i)
), seen AS (
    INSERT INTO card_seen_messages (message_key, expires_at)
    SELECT message_key, now() + make_interval(secs => %(ttl_s)s) FROM q ORDER BY message_key
    ON CONFLICT (message_key) DO NOTHING
    RETURNING message_key
)
SELECT q.i, q.message_key IN (SELECT message_key FROM seen) AS first_time,
       c.id::text, c.token, c.account_id::text, c.asset, c.state, c.daily_limit::text,
       c.monthly_limit::text, c.blocked_mccs, c.tenant, c.metadata, c.version,
       a.result, a.approved_amount::text, a.decline_reason, a.hold_id::text
FROM q
LEFT JOIN LATERAL (SELECT * FROM cards WHERE cards.token = q.card_token LIMIT 1) AS c ON true
LEFT JOIN LATERAL (
    SELECT * FROM card_authorizations WHERE card_authorizations.token = q.token LIMIT 1
) AS a ON true;

-- name: mark_seen_messages
-- The event endpoint's replay check, for every delivery that queued meanwhile: returns the keys
-- new now; a key already there is a replay. Keys are distinct and inserted in order (see above).
INSERT INTO card_seen_messages (message_key, expires_at)
SELECT key, now() + make_interval(secs => %(ttl_s)s) FROM unnest(%(keys)s::text[]) AS key ORDER BY key
ON CONFLICT (message_key) DO NOTHING
RETURNING message_key;

-- name: delete_expired_seen_messages
-- Bounds card_seen_messages: rows past the signature tolerance guard nothing (the signature itself
-- is refused as stale by then). Run by each gateway every minute, a bounded number of rows a time.
DELETE FROM card_seen_messages
WHERE message_key IN (
    SELECT message_key FROM card_seen_messages WHERE expires_at < now() LIMIT %(limit)s
);

-- name: record_authorizations
-- Answers and their transactions' first states, for every authorization decided meanwhile, in one
-- statement whose one parameter is the JSON array of the rows (one parameter, not one array per
-- column: adapting 17 arrays cost the gateway more CPU than the statement). Tokens are distinct
-- and rows go in token order, so two gateways recording the same retried authorization wait for
-- each other in one order; a webhook that created the transaction row first keeps it.
--
-- An answer decided with a cached card (clients/cards/card_cache.py) comes with its signed
-- message's key and the card version it was decided with, and is recorded only if both hold:
-- the message is new (marked here; its copies are replays) and the card is unchanged (else it is
-- `stale` and decided again). A row without them (decided from a fresh lookup, which marked the
-- message, or a late outcome) is recorded as it is. Returns, per row: whether it was a replay,
-- stale, recorded now, whether its transaction row is new, and the earlier answer to its token
-- when there was one (as of the statement's start: an answer committed concurrently may be missed).
WITH q AS (
    SELECT *
    FROM jsonb_to_recordset(%(rows)s::jsonb)
         AS q (token text, card_id uuid, result text, requested_amount numeric, approved_amount numeric,
               decline_reason text, hold_id uuid, timed_out boolean, account_id uuid, asset text,
               auth_total numeric, auth_created timestamptz, auth_event text, closed_reason text,
               hold_attempted boolean, hold_amount numeric, hold_open boolean, message_key text,
               card_version bigint)
), seen AS (
    INSERT INTO card_seen_messages (message_key, expires_at)
    SELECT message_key, now() + make_interval(secs => %(ttl_s)s) FROM q
    WHERE message_key IS NOT NULL ORDER BY message_key
    ON CONFLICT (message_key) DO NOTHING
    RETURNING message_key
), checked AS (
    SELECT q.*,
           q.message_key IS NOT NULL AND q.message_key NOT IN (SELECT message_key FROM seen) AS replayed,
           q.card_version IS NOT NULL AND q.card_version IS DISTINCT FROM c.version AS stale
    FROM q
    LEFT JOIN LATERAL (SELECT version FROM cards WHERE cards.id = q.card_id LIMIT 1) AS c ON true
), answer AS (
    INSERT INTO card_authorizations (token, card_id, result, requested_amount, approved_amount, decline_reason,
                                     hold_id, timed_out)
    SELECT token, card_id, result, requested_amount, approved_amount, decline_reason, hold_id, timed_out
    FROM checked WHERE NOT replayed AND NOT stale ORDER BY token
    ON CONFLICT (token) DO NOTHING
    RETURNING token
), transaction AS (
    INSERT INTO card_transactions (token, card_id, account_id, asset, auth_total, auth_created, auth_event,
                                   closed_reason, hold_attempted, hold_id, hold_amount, hold_open)
    SELECT token, card_id, account_id, asset, auth_total, auth_created, auth_event, closed_reason,
           hold_attempted, hold_id, hold_amount, hold_open
    FROM checked WHERE NOT replayed AND NOT stale ORDER BY token
    ON CONFLICT (token) DO NOTHING
    RETURNING token
)
SELECT k.token, k.replayed, k.stale, k.token IN (SELECT token FROM answer) AS answered,
       k.token IN (SELECT token FROM transaction) AS created,
       a.result, a.approved_amount::text, a.decline_reason, a.hold_id::text
FROM checked AS k
LEFT JOIN LATERAL (
    SELECT * FROM card_authorizations WHERE card_authorizations.token = k.token LIMIT 1
) AS a ON true;

-- name: insert_transaction
-- The lifecycle row of a transaction; the first writer (real-time path or webhook worker) wins.
INSERT INTO card_transactions (token, card_id, account_id, asset, auth_total, auth_created, auth_event,
                               closed_reason, hold_attempted, hold_id, hold_amount, hold_open)
VALUES (%(token)s, %(card_id)s, %(account_id)s, %(asset)s, %(auth_total)s, %(auth_created)s, %(auth_event)s,
        %(closed_reason)s, %(hold_attempted)s, %(hold_id)s, %(hold_amount)s, %(hold_open)s)
ON CONFLICT (token) DO NOTHING
RETURNING token;

-- name: transaction_hold
SELECT hold_id::text FROM card_transactions WHERE token = %(token)s;

-- name: lock_transaction
SELECT token, card_id::text, account_id::text, asset, auth_total::text, auth_created, auth_event, closed_reason,
       hold_attempted, hold_id::text, hold_amount::text, hold_open, cleared_total::text, returned_total::text,
       return_reversed::text, credit_transfer_id::text, review
FROM card_transactions WHERE token = %(token)s
FOR UPDATE;

-- name: update_transaction
UPDATE card_transactions
SET auth_total = %(auth_total)s, auth_created = %(auth_created)s, auth_event = %(auth_event)s,
    closed_reason = %(closed_reason)s, hold_attempted = %(hold_attempted)s, hold_id = %(hold_id)s,
    hold_amount = %(hold_amount)s, hold_open = %(hold_open)s, cleared_total = %(cleared_total)s,
    returned_total = %(returned_total)s, return_reversed = %(return_reversed)s,
    credit_transfer_id = %(credit_transfer_id)s, review = %(review)s, updated_at = now()
WHERE token = %(token)s;

-- name: insert_events
-- The inbox write of one delivery: new events are returned, duplicates (same event token) are not.
-- Rows go in event-token order: two deliveries that share events (a processor resending a batch
-- while the first copy is still being stored, its events in another order) then wait for each
-- other in one order instead of deadlocking (seen: "deadlock detected" while inserting into the
-- card_events index, answered 500).
INSERT INTO card_events (event_token, transaction_token, event_type, payload, payload_hash)
SELECT * FROM unnest(%(event_tokens)s::text[], %(transaction_tokens)s::text[], %(event_types)s::text[],
                     %(payloads)s::jsonb[], %(payload_hashes)s::bytea[])
              AS u (event_token, transaction_token, event_type, payload, payload_hash)
ORDER BY event_token
ON CONFLICT (event_token) DO NOTHING
RETURNING event_token, transaction_token;

-- name: event_hashes
SELECT event_token, payload_hash FROM card_events WHERE event_token = ANY(%(event_tokens)s::text[]);

-- name: next_event
-- The oldest unapplied event of a transaction (the caller holds the transaction's row lock).
SELECT event_token, payload FROM card_events
WHERE transaction_token = %(token)s AND applied_at IS NULL
ORDER BY sequence
LIMIT 1;

-- name: event_by_token
SELECT event_token, payload, applied_at FROM card_events WHERE event_token = %(event_token)s;

-- name: first_event_card
-- Any event of the transaction names its card (all events of one transaction name the same card).
SELECT payload FROM card_events WHERE transaction_token = %(token)s ORDER BY sequence LIMIT 1;

-- name: mark_applied
UPDATE card_events SET applied_at = now(), outcome = %(outcome)s, attempts = attempts + 1, last_error = NULL
WHERE event_token = %(event_token)s AND applied_at IS NULL;

-- name: record_failure
-- A transient failure: try again later, backing off (at most 5 minutes).
UPDATE card_events
SET attempts = attempts + 1, last_error = %(error)s,
    next_attempt_at = now() + least(interval '5 minutes', interval '100 milliseconds' * power(2, least(attempts, 12)))
WHERE event_token = %(event_token)s AND applied_at IS NULL;

-- name: due_transactions
SELECT DISTINCT transaction_token FROM (
    SELECT transaction_token FROM card_events
    WHERE applied_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT %(limit)s
) AS due;

-- name: inflight_of
SELECT event_token, attempt, request FROM card_inflight WHERE transaction_token = %(token)s;

-- name: write_inflight
INSERT INTO card_inflight (transaction_token, event_token, attempt, request)
VALUES (%(token)s, %(event_token)s, %(attempt)s, %(request)s)
ON CONFLICT (transaction_token) DO UPDATE
SET event_token = EXCLUDED.event_token, attempt = EXCLUDED.attempt, request = EXCLUDED.request,
    started_at = now();

-- name: delete_inflight
DELETE FROM card_inflight WHERE transaction_token = %(token)s;

-- name: unapplied_count
SELECT count(*) FROM card_events WHERE applied_at IS NULL;

-- name: settled_events_between
-- Applied clearings and returns whose processor time falls in [start, end): the ledger side of a
-- settlement day, for reconciliation.
SELECT event_token, transaction_token, event_type, payload, outcome
FROM card_events
WHERE applied_at IS NOT NULL AND event_type IN ('clearing', 'return', 'return.reversal')
  AND (payload->>'created')::timestamptz >= %(start)s AND (payload->>'created')::timestamptz < %(end)s;

-- name: applied_event
SELECT event_token, transaction_token, event_type, payload, outcome
FROM card_events WHERE event_token = %(event_token)s AND applied_at IS NOT NULL;

-- name: lock_transaction_row
-- Sent before claim_next in the same round trip (a statement of its own, so claim_next's snapshot is
-- taken once the lock is held): a worker that waited here for another worker's transaction must read
-- the events and intent that one left, not the ones before it (with one statement, its stale
-- snapshot showed an event the other worker had just applied, which it then applied again: the
-- ledger refused the second plan, IDEMPOTENCY_KEY_REUSED, and the transaction was marked
-- ledger_rejected; seen with two gateway replicas).
SELECT 1 FROM card_transactions WHERE token = %(token)s FOR UPDATE;

-- name: event_unapplied
-- After a first event created the transaction's row: whether the event is still to apply (another
-- worker may have created the row and applied it while this one waited for the row).
SELECT 1 FROM card_events WHERE event_token = %(event_token)s AND applied_at IS NULL;

-- name: claim_next
-- One round trip at the start of an event's transaction (after lock_transaction_row): the
-- transaction's row (locked), a crashed attempt's intent, and the oldest unapplied event.
SELECT t.token, t.card_id, t.account_id, t.asset, t.auth_total, t.auth_created, t.auth_event, t.closed_reason,
       t.hold_attempted, t.hold_id, t.hold_amount, t.hold_open, t.cleared_total, t.returned_total,
       t.return_reversed, t.credit_transfer_id, t.review,
       i.event_token, i.attempt, i.request,
       e.event_token, e.payload
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT token, card_id::text, account_id::text, asset, auth_total::text, auth_created, auth_event,
           closed_reason, hold_attempted, hold_id::text, hold_amount::text, hold_open, cleared_total::text,
           returned_total::text, return_reversed::text, credit_transfer_id::text, review
    FROM card_transactions WHERE token = %(token)s FOR UPDATE
) AS t ON true
LEFT JOIN card_inflight AS i ON i.transaction_token = %(token)s
LEFT JOIN LATERAL (
    SELECT event_token, payload FROM card_events
    WHERE transaction_token = %(token)s AND applied_at IS NULL
    ORDER BY sequence LIMIT 1
) AS e ON true;

-- name: finish_event
-- One round trip at the end: the new state, the event applied, the intent gone (one statement).
WITH state AS (
    UPDATE card_transactions
    SET auth_total = %(auth_total)s, auth_created = %(auth_created)s, auth_event = %(auth_event)s,
        closed_reason = %(closed_reason)s, hold_attempted = %(hold_attempted)s, hold_id = %(hold_id)s,
        hold_amount = %(hold_amount)s, hold_open = %(hold_open)s, cleared_total = %(cleared_total)s,
        returned_total = %(returned_total)s, return_reversed = %(return_reversed)s,
        credit_transfer_id = %(credit_transfer_id)s, review = %(review)s, updated_at = now()
    WHERE token = %(token)s
    RETURNING token
), applied AS (
    UPDATE card_events SET applied_at = now(), outcome = %(outcome)s, attempts = attempts + 1, last_error = NULL
    WHERE event_token = %(event_token)s AND applied_at IS NULL
    RETURNING event_token
), cleared AS (
    DELETE FROM card_inflight WHERE transaction_token = %(token)s RETURNING transaction_token
)
SELECT (SELECT count(*) FROM state), (SELECT count(*) FROM applied);

-- name: lock_card_spend
-- Degraded spend limits (Redis down): one decision per card at a time, across gateway replicas.
-- The two-int key space (first key 'CARD') never meets the ledger's one-bigint account locks.
SELECT pg_advisory_xact_lock(1128354372, hashtext(%(card_id)s::text));

-- name: spent_since
-- What the card spent since each window opened: recorded approvals plus reservations of decisions
-- still in flight (not yet recorded, younger than five minutes). Also the spend-limit seed of Redis.
SELECT
    (SELECT COALESCE(sum(approved_amount), 0) FROM card_authorizations
     WHERE card_id = %(card_id)s AND decided_at >= %(day_start)s AND approved_amount > 0)
  + (SELECT COALESCE(sum(r.amount), 0) FROM card_spend_reservations AS r
     WHERE r.card_id = %(card_id)s AND r.reserved_at >= greatest(%(day_start)s, now() - interval '5 minutes')
       AND NOT EXISTS (SELECT 1 FROM card_authorizations AS a WHERE a.token = r.token)),
    (SELECT COALESCE(sum(approved_amount), 0) FROM card_authorizations
     WHERE card_id = %(card_id)s AND decided_at >= %(month_start)s AND approved_amount > 0)
  + (SELECT COALESCE(sum(r.amount), 0) FROM card_spend_reservations AS r
     WHERE r.card_id = %(card_id)s AND r.reserved_at >= greatest(%(month_start)s, now() - interval '5 minutes')
       AND NOT EXISTS (SELECT 1 FROM card_authorizations AS a WHERE a.token = r.token));

-- name: spend_reservation_of
-- A token's reservation, if it made one: copies of one authorization decided at once reserve once.
SELECT amount::text FROM card_spend_reservations WHERE token = %(token)s;

-- name: insert_spend_reservation
INSERT INTO card_spend_reservations (token, card_id, amount) VALUES (%(token)s, %(card_id)s, %(amount)s)
ON CONFLICT (token) DO NOTHING;

-- name: delete_old_spend_reservations
DELETE FROM card_spend_reservations WHERE card_id = %(card_id)s AND reserved_at < now() - interval '1 day';
