-- Named queries of the chain watcher (chain/deposit_store.py). Tables: migration 0003_chain.sql.
-- Deposit states: 1 SEEN, 3 CREDITED, 4 ORPHANED, 5 REVERSAL_PENDING, 6 REVERSED, 7 HELD, 8 REJECTED.

-- name: ensure_cursor
-- The first start of a watcher on a chain: "processed up to start_block - 1" (hash unknown).
INSERT INTO chain_cursors (chain_id, start_block, block_number, block_hash, updated_at)
VALUES (%(chain_id)s, %(start_block)s, %(start_block)s - 1, NULL, clock_timestamp())
ON CONFLICT (chain_id) DO NOTHING;

-- name: load_cursor
SELECT start_block, block_number, block_hash FROM chain_cursors WHERE chain_id = %(chain_id)s;

-- name: advance_cursor
-- Guarded by the checkpoint the range was read on top of: a mismatch means another writer.
UPDATE chain_cursors
SET block_number = %(number)s, block_hash = %(hash)s, head_number = greatest(%(head)s, %(number)s),
    updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND block_number = %(expected_number)s
  AND block_hash IS NOT DISTINCT FROM %(expected_hash)s;

-- name: note_head
UPDATE chain_cursors SET head_number = %(head)s, updated_at = clock_timestamp() WHERE chain_id = %(chain_id)s;

-- name: watched_assets
SELECT asset, contract_address, confirmations, omnibus_account_id FROM chain_assets WHERE chain_id = %(chain_id)s;

-- name: watched_addresses
SELECT address, asset, account_id FROM deposit_addresses WHERE chain_id = %(chain_id)s;

-- name: insert_blocks
INSERT INTO chain_blocks (chain_id, number, hash, parent_hash, recorded_at)
SELECT %(chain_id)s, number, hash, parent_hash, clock_timestamp()
FROM unnest(%(numbers)s::bigint[], %(hashes)s::text[], %(parent_hashes)s::text[]) AS u(number, hash, parent_hash);

-- name: prune_blocks
DELETE FROM chain_blocks WHERE chain_id = %(chain_id)s AND number < %(below)s;

-- name: upsert_deposit
-- A deposit seen in a block of the canonical chain. Seen again (after a reorg, in another block):
-- ORPHANED -> SEEN; REVERSAL_PENDING -> CREDITED (it is back: nothing to reverse); REVERSED -> SEEN
-- with the next generation (credited again under a new request id). Amount and account are only
-- refreshed while nothing was credited for them.
INSERT INTO chain_deposits (chain_id, tx_hash, position, address, asset, account_id, from_address, amount,
                            state, block_number, block_hash, first_seen_at, updated_at)
VALUES (%(chain_id)s, %(tx_hash)s, %(position)s, %(address)s, %(asset)s, %(account_id)s, %(from_address)s,
        %(amount)s, 1, %(block_number)s, %(block_hash)s, clock_timestamp(), clock_timestamp())
ON CONFLICT (chain_id, tx_hash, position) DO UPDATE
SET block_number = EXCLUDED.block_number,
    block_hash = EXCLUDED.block_hash,
    state = CASE chain_deposits.state WHEN 4 THEN 1 WHEN 5 THEN 3 WHEN 6 THEN 1 ELSE chain_deposits.state END,
    generation = chain_deposits.generation + (chain_deposits.state = 6)::int,
    amount = CASE WHEN chain_deposits.state IN (1, 4, 6) THEN EXCLUDED.amount ELSE chain_deposits.amount END,
    address = CASE WHEN chain_deposits.state IN (1, 4, 6) THEN EXCLUDED.address ELSE chain_deposits.address END,
    account_id = CASE WHEN chain_deposits.state IN (1, 4, 6) THEN EXCLUDED.account_id
                      ELSE chain_deposits.account_id END,
    updated_at = clock_timestamp()
RETURNING state, generation;

-- name: block_hash
SELECT hash FROM chain_blocks WHERE chain_id = %(chain_id)s AND number = %(number)s;

-- name: rewind_blocks
DELETE FROM chain_blocks WHERE chain_id = %(chain_id)s AND number > %(ancestor)s;

-- name: orphan_unconfirmed
-- Deposits of the orphaned blocks that were not credited: forgotten (kept visible as ORPHANED).
UPDATE chain_deposits SET state = 4, updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND block_number > %(ancestor)s AND state = 1
RETURNING tx_hash, position;

-- name: orphan_credited
-- Credited deposits of the orphaned blocks: the reorg was deeper than their confirmations.
UPDATE chain_deposits SET state = 5, updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND block_number > %(ancestor)s AND state = 3
RETURNING tx_hash, position, amount::text, account_id;

-- name: rewind_cursor
UPDATE chain_cursors SET block_number = %(ancestor)s, block_hash = %(ancestor_hash)s, updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s;

-- name: confirmed_deposits
-- SEEN deposits with enough confirmations on the watcher's chain (counted to its checkpoint).
SELECT d.tx_hash, d.position, d.address, d.asset, d.account_id, d.amount::text, d.generation,
       a.omnibus_account_id, d.block_number
FROM chain_deposits AS d
JOIN chain_assets AS a ON a.chain_id = d.chain_id AND a.asset = d.asset
JOIN chain_cursors AS c ON c.chain_id = d.chain_id
WHERE d.chain_id = %(chain_id)s AND d.state = 1
  AND c.block_number - d.block_number + 1 >= a.confirmations
ORDER BY d.block_number, d.tx_hash, d.position
LIMIT %(limit)s;

-- name: mark_credited
UPDATE chain_deposits
SET state = 3, credit_transfer_id = %(transfer_id)s, credit_request_id = %(request_id)s,
    updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND tx_hash = %(tx_hash)s AND position = %(position)s AND state = 1
  AND generation = %(generation)s;

-- name: mark_rejected
UPDATE chain_deposits SET state = 8, credit_request_id = %(request_id)s, updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND tx_hash = %(tx_hash)s AND position = %(position)s AND state = 1;

-- name: reversals_due
-- Credited deposits a deep reorg removed, once the replacement chain has passed their old height
-- without them.
SELECT d.tx_hash, d.position, d.account_id, d.asset, d.amount::text, d.generation, d.credit_transfer_id,
       a.omnibus_account_id, d.block_number
FROM chain_deposits AS d
JOIN chain_assets AS a ON a.chain_id = d.chain_id AND a.asset = d.asset
JOIN chain_cursors AS c ON c.chain_id = d.chain_id
WHERE d.chain_id = %(chain_id)s AND d.state = 5 AND c.block_number >= d.block_number
ORDER BY d.block_number, d.tx_hash, d.position
LIMIT %(limit)s;

-- name: mark_reversed
-- state 6 REVERSED (transfer_id: the reversal) or 7 HELD (transfer_id: the hold, if any).
UPDATE chain_deposits SET state = %(state)s, reversal_transfer_id = %(transfer_id)s, updated_at = clock_timestamp()
WHERE chain_id = %(chain_id)s AND tx_hash = %(tx_hash)s AND position = %(position)s AND state = 5;

-- name: insert_alert
INSERT INTO chain_alerts (chain_id, kind, subject, message, details, created_at)
VALUES (%(chain_id)s, %(kind)s, %(subject)s, %(message)s, %(details)s::jsonb, clock_timestamp());
