-- Named queries of the withdrawal signer (chain/withdrawal_store.py). Tables: migration 0003_chain.sql.
-- Withdrawal states: 1 REQUESTED, 2 HELD, 3 SIGNED, 4 SENT, 5 MINED, 6 POSTED, 7 FAILED, 8 REJECTED.

-- name: ensure_nonce
INSERT INTO chain_nonces (chain_id, address, next_nonce, updated_at)
VALUES (%(chain_id)s, %(address)s, %(nonce)s, clock_timestamp())
ON CONFLICT (chain_id, address) DO NOTHING;

-- name: load_nonce
SELECT next_nonce FROM chain_nonces WHERE chain_id = %(chain_id)s AND address = %(address)s;

-- name: lock_nonce
SELECT next_nonce FROM chain_nonces WHERE chain_id = %(chain_id)s AND address = %(address)s FOR UPDATE;

-- name: raise_nonce
-- Only ever forward: the node counts more transactions of the wallet than we gave nonces for.
UPDATE chain_nonces SET next_nonce = %(nonce)s, updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND address = %(address)s AND next_nonce < %(nonce)s;

-- name: advance_nonce
UPDATE chain_nonces SET next_nonce = next_nonce + 1, updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND address = %(address)s AND next_nonce = %(nonce)s;

-- name: withdrawals_in
SELECT w.id, w.request_id, w.account_id, w.asset, w.to_address, w.amount::text, w.state, w.hold_id, w.nonce,
       w.tx_hash, w.mined_block_number, w.updated_at, a.contract_address, a.confirmations, a.omnibus_account_id,
       extract(epoch FROM clock_timestamp() - w.updated_at)::float8 AS idle_s
FROM withdrawals AS w
JOIN chain_assets AS a ON a.chain_id = w.chain_id AND a.asset = w.asset
WHERE w.chain_id = %(chain_id)s AND w.state = ANY(%(states)s::smallint[])
  AND extract(epoch FROM clock_timestamp() - w.updated_at) >= %(idle_s)s
ORDER BY w.nonce NULLS LAST, w.created_at
LIMIT %(limit)s;

-- name: attempts_of
SELECT attempt, kind, nonce, tx_hash, raw_tx, max_fee_per_gas::text, max_priority_fee_per_gas::text,
       extract(epoch FROM clock_timestamp() - created_at)::float8 AS age_s, broadcast_at IS NOT NULL
FROM withdrawal_attempts WHERE withdrawal_id = %(id)s ORDER BY attempt;

-- name: bind_nonce
-- HELD -> SIGNED: the nonce, the hot wallet and the first signed transaction, with the nonce taken.
UPDATE withdrawals
SET state = 3, nonce = %(nonce)s, from_address = %(from_address)s, tx_hash = %(tx_hash)s,
    updated_at = clock_timestamp()
WHERE id = %(id)s AND state = 2;

-- name: insert_attempt
INSERT INTO withdrawal_attempts (withdrawal_id, attempt, kind, nonce, tx_hash, raw_tx, max_fee_per_gas,
                                 max_priority_fee_per_gas, created_at)
VALUES (%(id)s, %(attempt)s, %(kind)s, %(nonce)s, %(tx_hash)s, %(raw_tx)s, %(max_fee)s, %(priority_fee)s,
        clock_timestamp());

-- name: latest_tx
UPDATE withdrawals SET tx_hash = %(tx_hash)s, updated_at = clock_timestamp() WHERE id = %(id)s;

-- name: broadcast_done
UPDATE withdrawal_attempts SET broadcast_at = coalesce(broadcast_at, clock_timestamp())
WHERE withdrawal_id = %(id)s AND attempt = %(attempt)s;

-- name: set_state
-- A forward move only (the states are ordered, except MINED -> SENT when a reorg unmines it).
UPDATE withdrawals
SET state = %(state)s, tx_hash = coalesce(%(tx_hash)s, tx_hash),
    mined_block_number = %(block_number)s, mined_block_hash = %(block_hash)s,
    confirmations = %(confirmations)s, updated_at = clock_timestamp()
WHERE id = %(id)s AND state = %(from_state)s;

-- name: touch
-- Progress without a state change (a new confirmation): keeps updated_at meaning "last looked at".
UPDATE withdrawals SET confirmations = %(confirmations)s, updated_at = clock_timestamp() WHERE id = %(id)s;

-- name: settle
-- The end: POSTED (hold posted) or FAILED (hold voided, with the reason).
UPDATE withdrawals
SET state = %(state)s, settle_transfer_id = %(transfer_id)s, failure_reason = %(reason)s,
    updated_at = clock_timestamp()
WHERE id = %(id)s AND state = ANY(%(from_states)s::smallint[]);

-- name: requested_settled
-- A REQUESTED row abandoned by its caller, finished by the signer: HELD or REJECTED.
UPDATE withdrawals
SET state = %(state)s, hold_id = %(hold_id)s, failure_reason = %(reason)s, updated_at = clock_timestamp()
WHERE id = %(id)s AND state = 1;

-- name: insert_alert
INSERT INTO chain_alerts (chain_id, kind, subject, message, details, created_at)
VALUES (%(chain_id)s, %(kind)s, %(subject)s, %(message)s, %(details)s::jsonb, clock_timestamp());
