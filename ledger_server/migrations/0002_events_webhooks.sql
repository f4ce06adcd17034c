-- Delivering the outbox: wake-ups for WatchEvents and the webhook dispatcher, and the webhook tables
-- (endpoints, their signing secrets, one delivery per endpoint and event, every attempt).
-- See docs/events.md for the ordering argument and the delivery state machine.

-- Every transaction that writes the outbox gets its transaction id BEFORE its first sequence value
-- is drawn. Readers rely on it (ledger_server/events/watermark.py): a sequence value that is drawn
-- but not yet committed always belongs to a transaction listed as running in a reader's snapshot.
CREATE FUNCTION outbox_assign_xid_first() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_xid_before_sequence BEFORE INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_assign_xid_first();

-- Wake listeners when the transaction commits (NOTIFY is delivered at commit, never on rollback,
-- and repeated notifications of one transaction are folded into one).
CREATE FUNCTION outbox_notify_listeners() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ledger_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify_listeners();

-- Receivers of outbound webhooks. state: 1 enabled, 2 disabled. disabled_reason:
-- ledger.v1.WebhookDisabledReason. event_types: ledger.v1.EventType values, empty = every type.
-- The lease columns make one dispatcher at a time the sender of an endpoint's queue, which is what
-- keeps its deliveries in sequence order; an expired lease (a dispatcher killed) is taken over.
CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description           text NOT NULL DEFAULT '' CHECK (length(description) <= 256),
    event_types           smallint[] NOT NULL DEFAULT '{}',
    state                 smallint NOT NULL CHECK (state IN (1, 2)),
    disabled_reason       smallint CHECK (disabled_reason BETWEEN 1 AND 3),
    disabled_at           timestamptz,
    failing_since         timestamptz,
    start_after_sequence  bigint NOT NULL CHECK (start_after_sequence >= 0),
    lease_token           uuid,
    lease_expires_at      timestamptz NOT NULL DEFAULT '-infinity',
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CONSTRAINT disabled_has_reason CHECK ((state = 2) = (disabled_reason IS NOT NULL AND disabled_at IS NOT NULL))
);
COMMENT ON TABLE webhook_endpoints IS
    'Outbound webhook receivers, their event filter, failure streak and the dispatcher lease on their queue.';
CREATE INDEX webhook_endpoints_created ON webhook_endpoints (created_at, id);

-- Signing secrets. expires_at NULL: the current secret; a rotation gives the previous ones an
-- expiry (the grace period) during which every unexpired secret signs each request.
CREATE TABLE webhook_secrets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id),
    secret       text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/=]{32,128}$'),
    request_id   text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz
);
COMMENT ON TABLE webhook_secrets IS
    'HMAC keys of each endpoint; several sign at once during a rotation grace period.';
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);
CREATE UNIQUE INDEX webhook_secrets_one_current ON webhook_secrets (endpoint_id) WHERE expires_at IS NULL;
CREATE INDEX webhook_secrets_request ON webhook_secrets (request_id);

-- One row per (endpoint, event): the unit of delivery, retry and replay. Its id is the
-- `webhook-id` header, so receivers dedupe retries and replays by it.
-- state: 1 pending, 2 delivered, 3 dead (ledger.v1.WebhookDeliveryState).
-- cycle_attempts counts attempts since the delivery was created or last replayed (the position in
-- the retry schedule); attempt_count counts every attempt ever. attempt_started_at is set while an
-- attempt is in flight: found set by a new lease holder, it means the previous dispatcher died.
CREATE TABLE webhook_deliveries (
    id                  uuid PRIMARY KEY,
    endpoint_id         uuid NOT NULL REFERENCES webhook_endpoints (id),
    -- The event's outbox sequence. No foreign key: the outbox is append-only, and a key check
    -- would lock outbox rows on every fan-out.
    sequence            bigint NOT NULL CHECK (sequence > 0),
    event_type          smallint NOT NULL,
    occurred_at         timestamptz NOT NULL,
    state               smallint NOT NULL CHECK (state IN (1, 2, 3)),
    attempt_count       integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    cycle_attempts      integer NOT NULL DEFAULT 0 CHECK (cycle_attempts >= 0),
    next_attempt_at     timestamptz NOT NULL,
    attempt_started_at  timestamptz,
    delivered_at        timestamptz,
    dead_at             timestamptz,
    dead_reason         text CHECK (length(dead_reason) <= 200),
    replay_count        integer NOT NULL DEFAULT 0 CHECK (replay_count >= 0),
    created_at          timestamptz NOT NULL,
    CONSTRAINT one_delivery_per_event UNIQUE (endpoint_id, sequence),
    CONSTRAINT delivered_has_time CHECK (state <> 2 OR delivered_at IS NOT NULL),
    CONSTRAINT dead_has_time CHECK (state <> 3 OR dead_at IS NOT NULL)
);
COMMENT ON TABLE webhook_deliveries IS
    'One event to one endpoint: pending, delivered or dead; kept for the retention period, then purged.';
-- The head of each endpoint's queue: its lowest pending sequence.
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, sequence) WHERE state = 1;
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (sequence, endpoint_id) WHERE state = 3;
CREATE INDEX webhook_deliveries_occurred ON webhook_deliveries (occurred_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

-- Every attempt, for support: status, latency, error, a bounded excerpt of the answer.
-- outcome: ledger.v1.WebhookAttemptOutcome. Append-only.
CREATE TABLE webhook_attempts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id       uuid NOT NULL REFERENCES webhook_deliveries (id),
    number            integer NOT NULL CHECK (number > 0),
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL CHECK (duration_ms >= 0),
    status_code       smallint NOT NULL CHECK (status_code BETWEEN 0 AND 999),
    outcome           smallint NOT NULL CHECK (outcome BETWEEN 1 AND 6),
    error             text NOT NULL DEFAULT '' CHECK (length(error) <= 512),
    response_excerpt  text NOT NULL DEFAULT '' CHECK (octet_length(response_excerpt) <= 4096),
    created_at        timestamptz NOT NULL
);
COMMENT ON TABLE webhook_attempts IS 'Append-only log of every delivery attempt and its result.';
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
CREATE INDEX webhook_attempts_created ON webhook_attempts (created_at);

CREATE TRIGGER webhook_attempts_append_only BEFORE UPDATE ON webhook_attempts
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();

-- Nothing about a delivery is deleted before the retention floor (30 days), and never while it is
-- pending: the purge job (retention >= floor) is the only deleter.
CREATE FUNCTION webhook_retention_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.created_at > now() - interval '30 days' THEN
        RAISE EXCEPTION '% rows younger than the 30-day retention floor are kept', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_TABLE_NAME = 'webhook_deliveries' THEN
        -- Nested: plpgsql does not short-circuit AND, and attempts have no state column.
        IF OLD.state = 1 THEN
            RAISE EXCEPTION 'pending deliveries are never deleted' USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER webhook_attempts_retention BEFORE DELETE ON webhook_attempts
    FOR EACH ROW EXECUTE FUNCTION webhook_retention_guard();
CREATE TRIGGER webhook_deliveries_retention BEFORE DELETE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION webhook_retention_guard();
CREATE TRIGGER webhook_attempts_no_truncate BEFORE TRUNCATE ON webhook_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();
CREATE TRIGGER webhook_deliveries_no_truncate BEFORE TRUNCATE ON webhook_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();

-- How far the outbox has been fanned out into deliveries: one row. A dispatcher holding its row
-- lock (FOR UPDATE SKIP LOCKED) is the only one fanning out at that moment.
CREATE TABLE webhook_fanout_cursor (
    id             smallint PRIMARY KEY CHECK (id = 1),
    last_sequence  bigint NOT NULL CHECK (last_sequence >= 0),
    updated_at     timestamptz NOT NULL
);
COMMENT ON TABLE webhook_fanout_cursor IS
    'The outbox sequence up to which deliveries were created; advanced with them in one transaction.';
INSERT INTO webhook_fanout_cursor (id, last_sequence, updated_at) VALUES (1, 0, now());
