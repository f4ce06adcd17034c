-- Hold adjustments: an incremental authorization raises a pending hold, a partial authorization
-- reversal lowers it. Each adjustment is its own immutable transfer (kind 7 raise, 8 lower) pointing
-- at the hold; the hold's row keeps its current amount.

ALTER TABLE transfers DROP CONSTRAINT transfers_kind_check;
ALTER TABLE transfers ADD CONSTRAINT transfers_kind_check CHECK (kind BETWEEN 1 AND 8);
ALTER TABLE transfers DROP CONSTRAINT settles_a_hold;
ALTER TABLE transfers ADD CONSTRAINT settles_a_hold CHECK ((kind IN (3, 4, 5, 7, 8)) = (pending_id IS NOT NULL));
ALTER TABLE entries DROP CONSTRAINT entries_kind_check;
ALTER TABLE entries ADD CONSTRAINT entries_kind_check CHECK (kind BETWEEN 1 AND 8);

COMMENT ON COLUMN holds.amount IS 'The current amount held: the original hold plus its adjustments.';

-- A hold's row may change only while it is PENDING: its amount (adjustments) and, once, its state.
CREATE OR REPLACE FUNCTION hold_transition_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'holds are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.state <> 1 OR NEW.transfer_id <> OLD.transfer_id
       OR NEW.debit_account_id <> OLD.debit_account_id OR NEW.credit_account_id <> OLD.credit_account_id THEN
        RAISE EXCEPTION 'hold % may only leave PENDING once', OLD.transfer_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
