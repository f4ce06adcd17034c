-- Named queries of the chain RPCs (ledger_server/chain_registry.py, ledger_server/withdrawal_requests.py).

-- name: load_outcome
-- The stored outcome of a request id (shared with the posting engine: one id, one outcome).
SELECT operation, request_hash, grpc_code, outcome FROM request_outcomes WHERE request_id = %(request_id)s;

-- name: insert_outcome
INSERT INTO request_outcomes (request_id, operation, request_hash, grpc_code, outcome, created_at)
VALUES (%(request_id)s, %(operation)s, %(request_hash)s, %(grpc_code)s, %(outcome)s, clock_timestamp());

-- name: asset_scale
SELECT scale FROM assets WHERE code = %(asset)s;

-- name: account_brief
-- The asset and flags of an account: an omnibus must be of the asset and able to go below zero.
SELECT asset, debits_must_not_exceed_credits FROM accounts WHERE id = %(id)s;

-- name: chain_asset
SELECT chain_id, asset, contract_address, decimals, confirmations, omnibus_account_id, created_at
FROM chain_assets WHERE chain_id = %(chain_id)s AND asset = %(asset)s;

-- name: chain_asset_by_contract
SELECT chain_id, asset, contract_address, decimals, confirmations, omnibus_account_id, created_at
FROM chain_assets WHERE chain_id = %(chain_id)s AND contract_address = %(contract_address)s;

-- name: insert_chain_asset
INSERT INTO chain_assets (chain_id, asset, contract_address, decimals, confirmations, omnibus_account_id, created_at)
VALUES (%(chain_id)s, %(asset)s, %(contract_address)s, %(decimals)s, %(confirmations)s, %(omnibus_account_id)s,
        clock_timestamp())
RETURNING chain_id, asset, contract_address, decimals, confirmations, omnibus_account_id, created_at;

-- name: list_chain_assets
-- Keyset pagination on (chain_id, asset).
SELECT chain_id, asset, contract_address, decimals, confirmations, omnibus_account_id, created_at
FROM chain_assets
WHERE (%(chain_id)s::bigint = 0 OR chain_id = %(chain_id)s)
  AND (chain_id, asset) > (%(after_chain)s::bigint, %(after_asset)s::text)
ORDER BY chain_id, asset
LIMIT %(limit)s;

-- name: deposit_address
SELECT chain_id, address, account_id, asset, created_at
FROM deposit_addresses WHERE chain_id = %(chain_id)s AND address = %(address)s AND asset = %(asset)s;

-- name: insert_deposit_address
INSERT INTO deposit_addresses (chain_id, address, asset, account_id, created_at)
VALUES (%(chain_id)s, %(address)s, %(asset)s, %(account_id)s, clock_timestamp())
RETURNING chain_id, address, account_id, asset, created_at;

-- name: list_deposit_addresses
SELECT chain_id, address, account_id, asset, created_at
FROM deposit_addresses
WHERE (%(chain_id)s::bigint = 0 OR chain_id = %(chain_id)s)
  AND (%(account_id)s::uuid IS NULL OR account_id = %(account_id)s)
  AND (chain_id, address, asset) > (%(after_chain)s::bigint, %(after_address)s::text, %(after_asset)s::text)
ORDER BY chain_id, address, asset
LIMIT %(limit)s;

-- name: list_chain_deposits
-- Newest first (keyset on first_seen_at, then the key). confirmations are counted to the
-- watcher's checkpoint, and only for deposits still on its canonical chain.
SELECT d.chain_id, d.tx_hash, d.position, d.address, d.account_id, d.asset, d.amount::text, d.state,
       d.block_number, d.block_hash,
       CASE WHEN d.state IN (1, 3) AND c.block_number >= d.block_number
            THEN c.block_number - d.block_number + 1 ELSE 0 END AS confirmations,
       a.confirmations AS required, d.credit_transfer_id, d.reversal_transfer_id, d.from_address,
       d.credit_request_id, d.first_seen_at, d.updated_at
FROM chain_deposits AS d
JOIN chain_assets AS a ON a.chain_id = d.chain_id AND a.asset = d.asset
LEFT JOIN chain_cursors AS c ON c.chain_id = d.chain_id
WHERE (%(account_id)s::uuid IS NULL OR d.account_id = %(account_id)s)
  AND (%(address)s::text IS NULL OR d.address = %(address)s)
  AND (%(chain_id)s::bigint = 0 OR d.chain_id = %(chain_id)s)
  AND (%(after_time)s::timestamptz IS NULL
       OR (d.first_seen_at, d.chain_id, d.tx_hash, d.position)
          < (%(after_time)s::timestamptz, %(after_chain)s::bigint, %(after_tx)s::text, %(after_position)s::text))
ORDER BY d.first_seen_at DESC, d.chain_id DESC, d.tx_hash DESC, d.position DESC
LIMIT %(limit)s;

-- name: list_chain_alerts
SELECT id, chain_id, kind, subject, message, details::text, created_at
FROM chain_alerts
WHERE (%(chain_id)s::bigint = 0 OR chain_id = %(chain_id)s)
  AND (%(after_id)s::bigint = 0 OR id < %(after_id)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: insert_withdrawal
-- A new request, REQUESTED until its hold is placed; an existing one (a retry) is left alone.
INSERT INTO withdrawals (id, request_id, request_hash, account_id, chain_id, asset, to_address, amount, state,
                         created_at, updated_at)
VALUES (%(id)s, %(request_id)s, %(request_hash)s, %(account_id)s, %(chain_id)s, %(asset)s, %(to_address)s,
        %(amount)s, 1, clock_timestamp(), clock_timestamp())
ON CONFLICT (request_id) DO NOTHING;

-- name: withdrawal_by_request_id
SELECT id, request_id, request_hash, account_id, chain_id, asset, to_address, amount::text, state,
       hold_id, from_address, nonce, tx_hash, confirmations, failure_reason, created_at, updated_at
FROM withdrawals WHERE request_id = %(request_id)s;

-- name: withdrawal_by_id
SELECT id, request_id, request_hash, account_id, chain_id, asset, to_address, amount::text, state,
       hold_id, from_address, nonce, tx_hash, confirmations, failure_reason, created_at, updated_at
FROM withdrawals WHERE id = %(id)s;

-- name: lock_withdrawal
SELECT state FROM withdrawals WHERE id = %(id)s FOR UPDATE;

-- name: withdrawal_held
UPDATE withdrawals SET state = 2, hold_id = %(hold_id)s, updated_at = clock_timestamp()
WHERE id = %(id)s AND state = 1;

-- name: withdrawal_rejected
UPDATE withdrawals SET state = 8, failure_reason = %(reason)s, updated_at = clock_timestamp()
WHERE id = %(id)s AND state = 1;
