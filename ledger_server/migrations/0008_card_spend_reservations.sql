-- Spend limits while Redis is down (clients/cards/spend_limits.py). The authorization records
-- (card_authorizations) are the truth of what a card spent, but an authorization is recorded only
-- after its ledger hold is placed: two concurrent authorizations of one card could both read the
-- same total and both pass the limit. In that degraded path each decision takes a per-card
-- transaction lock, counts the approvals plus the reservations still in flight, and inserts its own
-- reservation before it answers. A reservation stops counting once its authorization is recorded
-- (the record then counts what was really approved) or after five minutes (a gateway that died
-- mid-decision). Rows are only written during Redis outages; old ones are deleted as cards reserve.
CREATE TABLE card_spend_reservations (
    token        text PRIMARY KEY,
    card_id      uuid NOT NULL REFERENCES cards (id),
    amount       numeric(39, 0) NOT NULL CHECK (amount > 0),
    reserved_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE card_spend_reservations IS
    'Spend reserved by authorizations in flight while Redis is down: no two squeeze under one limit.';
CREATE INDEX card_spend_reservations_card ON card_spend_reservations (card_id, reserved_at);
