-- Card versions and change notifications, so each card gateway can keep cards in memory
-- (clients/cards/card_cache.py) and skip a database lookup per real-time authorization.
--
-- version: bumped by every change of a card (state, limits, blocked MCCs). An authorization decided
-- with a cached card records its answer only if the card's version is still the one it decided with
-- (store.record_authorizations); otherwise it is decided again with the card as it is now. So a freeze
-- committed before an authorization's answer is recorded always applies to it, whatever any cache holds.
-- card_changed: a notification naming the card's token at the commit of each change, which every
-- gateway listens to and evicts the card on, so decisions with a stale card (and the hold they place
-- and then void) stay rare.
ALTER TABLE cards ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version > 0);
COMMENT ON COLUMN cards.version IS
    'Bumped by every change: a decision made with an older version of the card is not recorded.';

CREATE FUNCTION card_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    PERFORM pg_notify('card_changed', OLD.token);
    RETURN NEW;
END $$;
COMMENT ON FUNCTION card_changed() IS
    'Bumps the card version and tells every card gateway (LISTEN card_changed) at commit.';

-- After cards_closed_is_final (triggers of one event run in name order): a refused change bumps nothing.
CREATE TRIGGER cards_version_and_notify BEFORE UPDATE ON cards
    FOR EACH ROW EXECUTE FUNCTION card_changed();
