-- Card processor integration (clients/cards, the card gateway): cards, their controls, the
-- real-time authorization decisions, the per-transaction lifecycle state and the webhook inbox.
-- Money never lives here: every amount below mirrors or explains a ledger transfer, and every ledger
-- effect is made through the ledger API with a request id derived from the processor's tokens.

-- The ledger accounts a card program needs per asset, one per role (merchant_settlement,
-- processor_receivable, fee_revenue, network_fees, cardholder_receivable).
CREATE TABLE card_program_accounts (
    asset       text NOT NULL CHECK (asset ~ '^[A-Z0-9_]{1,16}$'),
    role        text NOT NULL CHECK (role ~ '^[a-z_]{1,32}$'),
    account_id  uuid NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asset, role)
);
COMMENT ON TABLE card_program_accounts IS
    'Ledger accounts of the card program per asset and role; created once through the ledger API.';

-- A card issued through the processor; it spends from its cardholder's ledger account.
-- state: 1 active, 2 frozen, 3 closed (terminal). Limits are minor units; NULL means none.
CREATE TABLE cards (
    id             uuid PRIMARY KEY,
    token          text NOT NULL UNIQUE CHECK (token ~ '^[\x21-\x7e]{1,128}$'),
    account_id     uuid NOT NULL,
    asset          text NOT NULL,
    tenant         text,
    state          smallint NOT NULL DEFAULT 1 CHECK (state BETWEEN 1 AND 3),
    daily_limit    numeric(39, 0) CHECK (daily_limit IS NULL OR daily_limit > 0),
    monthly_limit  numeric(39, 0) CHECK (monthly_limit IS NULL OR monthly_limit > 0),
    blocked_mccs   text[] NOT NULL DEFAULT '{}',
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cards IS 'Issued cards and their controls (frozen, spend limits, blocked MCCs).';
CREATE INDEX cards_account ON cards (account_id);

-- A closed card stays closed.
CREATE FUNCTION card_closed_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'cards are never deleted (close them)' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.state = 3 AND NEW.state <> 3 THEN
        RAISE EXCEPTION 'card % is closed', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER cards_closed_is_final BEFORE UPDATE OR DELETE ON cards
    FOR EACH ROW EXECUTE FUNCTION card_closed_is_final();

-- The answer given to each real-time authorization request, by the processor's authorization token:
-- a retried request gets the same answer, spend limits fall back to these rows when Redis is lost.
-- result: APPROVED, PARTIALLY_APPROVED, DECLINED.
CREATE TABLE card_authorizations (
    token             text PRIMARY KEY,
    card_id           uuid NOT NULL REFERENCES cards (id),
    result            text NOT NULL CHECK (result IN ('APPROVED', 'PARTIALLY_APPROVED', 'DECLINED')),
    requested_amount  numeric(39, 0) NOT NULL CHECK (requested_amount > 0),
    approved_amount   numeric(39, 0) NOT NULL CHECK (approved_amount >= 0),
    decline_reason    text,
    hold_id           uuid,
    timed_out         boolean NOT NULL DEFAULT false,
    decided_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT approved_within_requested CHECK (approved_amount <= requested_amount),
    CONSTRAINT declined_approves_nothing CHECK ((result = 'DECLINED') = (approved_amount = 0))
);
COMMENT ON TABLE card_authorizations IS
    'Real-time authorization answers: replayed to retried requests; spend-limit fallback truth.';
CREATE INDEX card_authorizations_spend ON card_authorizations (card_id, decided_at) WHERE approved_amount > 0;

-- The lifecycle of one processor transaction (an authorization and everything that follows it, or a
-- return): the facts learnt from its events and the ledger state they led to. Facts merge one way
-- only (the newest authorized total wins, clearings add up, closing is final), so any delivery
-- order of the same events ends in the same ledger state.
CREATE TABLE card_transactions (
    token              text PRIMARY KEY,
    card_id            uuid NOT NULL REFERENCES cards (id),
    account_id         uuid NOT NULL,
    asset              text NOT NULL,
    auth_total         numeric(39, 0) CHECK (auth_total >= 0),   -- newest authorized total known
    auth_created       timestamptz,                               -- processor time of that fact
    auth_event         text,                                      -- its event token (tie break)
    closed_reason      text,                                      -- cleared, reversed, expired, declined
    hold_attempted     boolean NOT NULL DEFAULT false,            -- a hold was placed or refused once
    hold_id            uuid,
    hold_amount        numeric(39, 0) NOT NULL DEFAULT 0 CHECK (hold_amount >= 0),
    hold_open          boolean NOT NULL DEFAULT false,
    cleared_total      numeric(39, 0) NOT NULL DEFAULT 0 CHECK (cleared_total >= 0),
    returned_total     numeric(39, 0) NOT NULL DEFAULT 0 CHECK (returned_total >= 0),
    return_reversed    numeric(39, 0) NOT NULL DEFAULT 0 CHECK (return_reversed >= 0),
    credit_transfer_id uuid,                                      -- a return's credit (reversals reverse it)
    review             text,                                      -- why a person should look (over-capture, ...)
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT open_hold_has_id CHECK (NOT hold_open OR (hold_id IS NOT NULL AND hold_amount > 0))
);
COMMENT ON TABLE card_transactions IS
    'Per processor transaction: merged lifecycle facts and the ledger state (hold, cleared) they produced.';

-- The webhook inbox: every accepted event, deduplicated by the processor's event token, stored before
-- the 2xx answer and applied afterwards in arrival order per transaction.
CREATE TABLE card_events (
    event_token        text PRIMARY KEY CHECK (event_token ~ '^[\x21-\x7e]{1,128}$'),
    sequence           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    transaction_token  text NOT NULL,
    event_type         text NOT NULL,
    payload            jsonb NOT NULL,
    payload_hash       bytea NOT NULL CHECK (length(payload_hash) = 32),
    received_at        timestamptz NOT NULL DEFAULT now(),
    applied_at         timestamptz,
    outcome            jsonb,                      -- the ledger transfers made, or why none
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text
);
COMMENT ON TABLE card_events IS
    'Webhook inbox: processed-event dedupe by event token; applied_at set in the transaction that records the effect.';
CREATE INDEX card_events_pending ON card_events (transaction_token, sequence) WHERE applied_at IS NULL;
CREATE INDEX card_events_due ON card_events (next_attempt_at) WHERE applied_at IS NULL;

-- The ledger request an event is being applied with, written before the ledger call and removed in
-- the transaction that records the event as applied. After a crash in between, the next worker on the
-- transaction resends exactly this request (the ledger replays it) before anything else.
CREATE TABLE card_inflight (
    transaction_token  text PRIMARY KEY,
    event_token        text NOT NULL,
    attempt            integer NOT NULL CHECK (attempt >= 1),
    request            jsonb NOT NULL,
    started_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE card_inflight IS
    'Write-ahead intent of the ledger request in flight per transaction; replayed after a crash.';
