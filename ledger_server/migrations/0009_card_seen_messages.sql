-- Signed processor requests already received (clients/cards/app.py): a signature names its message
-- id and timestamp, and the same pair (kept as its SHA-256 digest, so its size is bounded whatever
-- the id) seen again within the signature tolerance is a replay,
-- refused with 409. The authorization endpoint marks its message in the statement that looks up
-- its card (one round trip: store.authorization_contexts); the event endpoint in its own statement.
-- UNLOGGED: no WAL and no fsync wait for a row that only guards a window of minutes. A PostgreSQL
-- crash empties it, which re-opens that window once; no money depends on it: an authorization is
-- idempotent by its token (the ledger hold's request id, the earlier answer in
-- card_authorizations), an event by its event token (card_events). Rows are kept past the
-- signature tolerance (after which the signature itself is refused as stale), then deleted by the
-- gateway (delete_expired_seen_messages).
CREATE UNLOGGED TABLE card_seen_messages (
    message_key  text PRIMARY KEY,
    expires_at   timestamptz NOT NULL
);
COMMENT ON TABLE card_seen_messages IS
    'Signed processor requests already received (message id and timestamp): replays are refused.';
