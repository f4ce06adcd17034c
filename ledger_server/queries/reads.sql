-- Named queries of the read RPCs (ledger_server/reads.py). Reads run in autocommit on a pool,
-- outside the posting engine; every list is keyset-paginated on an indexed, unique key.

-- name: get_asset
SELECT code, scale, created_at FROM assets WHERE code = %(code)s;

-- name: list_assets
SELECT code, scale, created_at FROM assets WHERE code > %(after)s ORDER BY code LIMIT %(limit)s;

-- name: get_account
SELECT id, asset, debits_pending::text, debits_posted::text, credits_pending::text,
       credits_posted::text, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
       version, metadata::text, created_at
FROM accounts
WHERE id = %(id)s;

-- name: list_accounts
SELECT id, asset, debits_pending::text, debits_posted::text, credits_pending::text,
       credits_posted::text, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
       version, metadata::text, created_at
FROM accounts
WHERE id > %(after)s
  AND (%(asset)s::text IS NULL OR asset = %(asset)s::text)
  AND metadata @> %(metadata)s::jsonb
ORDER BY id
LIMIT %(limit)s;

-- name: balance_as_of
-- The counters after the account's last entry at or before the given moment.
SELECT account_version, debits_pending::text, debits_posted::text, credits_pending::text,
       credits_posted::text
FROM entries
WHERE account_id = %(id)s AND created_at <= %(as_of)s
ORDER BY account_version DESC
LIMIT 1;

-- name: list_entries
SELECT id, transfer_id, account_id, side, kind, pending_change::text, posted_change::text,
       account_version, debits_pending::text, debits_posted::text, credits_pending::text,
       credits_posted::text, created_at
FROM entries
WHERE account_id = %(account_id)s
  AND account_version > %(after)s
  AND (%(start)s::timestamptz IS NULL OR created_at >= %(start)s::timestamptz)
  AND (%(end)s::timestamptz IS NULL OR created_at < %(end)s::timestamptz)
ORDER BY account_version
LIMIT %(limit)s;

-- name: get_transfer
SELECT t.id, t.kind, t.debit_account_id, t.credit_account_id, t.amount::text, t.asset, t.request_id,
       t.pending_id, t.reverses_transfer_id, t.expires_at, t.metadata::text, t.created_at, h.state
FROM transfers AS t
LEFT JOIN holds AS h ON h.transfer_id = t.id
WHERE t.id = %(id)s;

-- name: get_transfer_by_request_id
SELECT t.id, t.kind, t.debit_account_id, t.credit_account_id, t.amount::text, t.asset, t.request_id,
       t.pending_id, t.reverses_transfer_id, t.expires_at, t.metadata::text, t.created_at, h.state
FROM transfers AS t
LEFT JOIN holds AS h ON h.transfer_id = t.id
WHERE t.request_id = %(request_id)s;
