-- Core ledger schema: assets, accounts, transfers, entries, holds, request outcomes, outbox.
-- Money rules enforced here, below the application, so no code path can break them:
--   * amounts are exact integers in [0, 2^128-1] (domain u128), never floats;
--   * entries, transfers and request outcomes are append-only (triggers reject UPDATE/DELETE);
--   * no-overdraft flags are re-checked by CHECK constraints on every account update;
--   * a hold only ever leaves PENDING once (trigger).

-- An unsigned 128-bit integer: every amount and counter. numeric(39,0) holds 2^128-1 exactly.
CREATE DOMAIN u128 AS numeric(39, 0)
    CHECK (VALUE >= 0 AND VALUE <= 340282366920938463463374607431768211455);

-- A signed change of a pending counter (a post or void lowers it).
CREATE DOMAIN i129 AS numeric(40, 0)
    CHECK (VALUE >= -340282366920938463463374607431768211455
           AND VALUE <= 340282366920938463463374607431768211455);

-- Rejects any change to a row of an append-only table: mistakes are fixed by compensating rows.
CREATE FUNCTION reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

-- Units of account. The scale says how many minor units make a major one (USD 2, ETH 18).
CREATE TABLE assets (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Z0-9_]{1,16}$'),
    scale       smallint NOT NULL CHECK (scale BETWEEN 0 AND 18),
    created_at  timestamptz NOT NULL
);
COMMENT ON TABLE assets IS 'Units of account; every account and transfer has exactly one.';

-- Accounts hold the four counters; balances are derived from them, never stored.
CREATE TABLE accounts (
    id                              uuid PRIMARY KEY,
    asset                           text NOT NULL REFERENCES assets (code),
    debits_pending                  u128 NOT NULL DEFAULT 0,
    debits_posted                   u128 NOT NULL DEFAULT 0,
    credits_pending                 u128 NOT NULL DEFAULT 0,
    credits_posted                  u128 NOT NULL DEFAULT 0,
    debits_must_not_exceed_credits  boolean NOT NULL,
    credits_must_not_exceed_debits  boolean NOT NULL,
    metadata                        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Number of entries against the account: the position of its latest entry.
    version                         bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    created_at                      timestamptz NOT NULL,
    CONSTRAINT flags_exclusive
        CHECK (NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)),
    -- The no-overdraft rule, checked by the database on every write as a last line of defence.
    CONSTRAINT debits_within_credits
        CHECK (NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted),
    CONSTRAINT credits_within_debits
        CHECK (NOT credits_must_not_exceed_debits OR credits_pending + credits_posted <= debits_posted)
);
COMMENT ON TABLE accounts IS 'Counters per account; updated only by the posting engine under an advisory lock.';
CREATE INDEX accounts_asset_id ON accounts (asset, id);
CREATE INDEX accounts_metadata ON accounts USING gin (metadata jsonb_path_ops);

-- Every movement of money, immutable. kind: 1 single-phase, 2 hold, 3 post, 4 void, 5 expire,
-- 6 reversal (ledger.v1.TransferKind).
CREATE TABLE transfers (
    id                    uuid PRIMARY KEY,
    request_id            text NOT NULL UNIQUE,
    kind                  smallint NOT NULL CHECK (kind BETWEEN 1 AND 6),
    debit_account_id      uuid NOT NULL REFERENCES accounts (id),
    credit_account_id     uuid NOT NULL REFERENCES accounts (id),
    amount                u128 NOT NULL CHECK (amount > 0),
    asset                 text NOT NULL REFERENCES assets (code),
    pending_id            uuid REFERENCES transfers (id),
    reverses_transfer_id  uuid REFERENCES transfers (id),
    expires_at            timestamptz,
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL,
    CONSTRAINT distinct_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT settles_a_hold CHECK ((kind IN (3, 4, 5)) = (pending_id IS NOT NULL)),
    CONSTRAINT reverses_a_transfer CHECK ((kind = 6) = (reverses_transfer_id IS NOT NULL))
);
COMMENT ON TABLE transfers IS 'Append-only record of every transfer; corrections are reversals.';
CREATE INDEX transfers_pending_id ON transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_reverses ON transfers (reverses_transfer_id) WHERE reverses_transfer_id IS NOT NULL;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();

-- One row per account per transfer: how its counters moved and what they were after.
-- side: 1 debit, 2 credit. Sum of pending_change / posted_change per side = the account's counters.
CREATE TABLE entries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transfer_id      uuid NOT NULL REFERENCES transfers (id),
    account_id       uuid NOT NULL REFERENCES accounts (id),
    side             smallint NOT NULL CHECK (side IN (1, 2)),
    kind             smallint NOT NULL CHECK (kind BETWEEN 1 AND 6),
    pending_change   i129 NOT NULL,
    posted_change    u128 NOT NULL,
    account_version  bigint NOT NULL CHECK (account_version > 0),
    debits_pending   u128 NOT NULL,
    debits_posted    u128 NOT NULL,
    credits_pending  u128 NOT NULL,
    credits_posted   u128 NOT NULL,
    created_at       timestamptz NOT NULL,
    CONSTRAINT one_entry_per_version UNIQUE (account_id, account_version)
);
COMMENT ON TABLE entries IS 'Append-only postings; statements and point-in-time balances read them.';
CREATE INDEX entries_account_time ON entries (account_id, created_at);
CREATE INDEX entries_transfer ON entries (transfer_id);
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION reject_mutation();

-- The state of each hold. state: 1 pending, 2 posted, 3 voided, 4 expired (ledger.v1.TransferState).
-- The only mutable money-related row besides the account counters: it leaves PENDING exactly once.
CREATE TABLE holds (
    transfer_id        uuid PRIMARY KEY REFERENCES transfers (id),
    debit_account_id   uuid NOT NULL REFERENCES accounts (id),
    credit_account_id  uuid NOT NULL REFERENCES accounts (id),
    amount             u128 NOT NULL CHECK (amount > 0),
    state              smallint NOT NULL CHECK (state BETWEEN 1 AND 4),
    posted_amount      u128 NOT NULL DEFAULT 0,
    settled_by         uuid REFERENCES transfers (id),
    expires_at         timestamptz,
    CONSTRAINT posted_within_hold CHECK (posted_amount <= amount),
    CONSTRAINT settled_iff_final CHECK ((state = 1) = (settled_by IS NULL)),
    CONSTRAINT only_posts_post CHECK (state = 2 OR posted_amount = 0)
);
COMMENT ON TABLE holds IS 'Two-phase transfers: reserved amounts awaiting post, void or expiry.';
CREATE INDEX holds_due ON holds (expires_at) WHERE state = 1 AND expires_at IS NOT NULL;

CREATE FUNCTION hold_transition_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'holds are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.state <> 1 OR NEW.amount <> OLD.amount OR NEW.transfer_id <> OLD.transfer_id
       OR NEW.debit_account_id <> OLD.debit_account_id OR NEW.credit_account_id <> OLD.credit_account_id THEN
        RAISE EXCEPTION 'hold % may only leave PENDING once', OLD.transfer_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER holds_transition_once BEFORE UPDATE OR DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION hold_transition_once();

-- Idempotency: the final outcome of every request id, success or business rejection, with a hash
-- of the canonical request. A retry replays `outcome`; another payload under the id is refused.
-- grpc_code 0 means `outcome` is the serialized response, otherwise a serialized ledger.v1.Error.
CREATE TABLE request_outcomes (
    request_id    text PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 255),
    operation     text NOT NULL,
    request_hash  bytea NOT NULL CHECK (length(request_hash) = 32),
    grpc_code     smallint NOT NULL,
    outcome       bytea NOT NULL,
    created_at    timestamptz NOT NULL
);
COMMENT ON TABLE request_outcomes IS 'Dedupe table: one final outcome per client request id, kept forever.';
CREATE TRIGGER request_outcomes_append_only BEFORE UPDATE OR DELETE ON request_outcomes
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();

-- Transactional outbox: one event per committed change, written in the same transaction.
-- txid lets readers wait until every transaction that could still commit a lower sequence is done.
CREATE TABLE outbox (
    sequence     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   smallint NOT NULL,
    account_ids  uuid[] NOT NULL,
    payload      bytea NOT NULL,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at   timestamptz NOT NULL
);
COMMENT ON TABLE outbox IS 'Events of committed changes (ledger.v1.LedgerEvent), delivered at least once.';
CREATE TRIGGER outbox_append_only BEFORE UPDATE OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION reject_mutation();
