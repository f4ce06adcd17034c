-- Named queries of the posting engine (ledger_server/posting.py). Each batch of requests runs them
-- once, set-based, inside one SERIALIZABLE transaction.

-- name: load_outcomes
-- Stored outcomes of the batch's request ids: replays and reused-key detection.
SELECT request_id, operation, request_hash, grpc_code, outcome
FROM request_outcomes
WHERE request_id = ANY(%(request_ids)s::text[]);

-- name: load_referenced_transfers
-- Transfers that holds-to-settle and reversals point at. Immutable, so safe to read before locking.
SELECT id, kind, debit_account_id, credit_account_id, amount::text, asset, request_id,
       pending_id, reverses_transfer_id, expires_at, metadata::text, created_at
FROM transfers
WHERE id = ANY(%(transfer_ids)s::uuid[]);

-- name: lock_accounts
-- Transaction-level advisory locks on every account the batch touches, in ascending key order
-- (the caller sorts and dedupes the keys). They are TRIED, never waited for: this transaction's
-- snapshot already exists, so waiting for another writer would leave it reading data from before
-- that writer's commit. When one is busy the batch stops at once and its retry locks first
-- (lock_accounts_session), then begins. Returns whether all were taken, and the clock read after:
-- the batch's timestamp.
SELECT bool_and(taken) AS all_taken, clock_timestamp() AS now
FROM (SELECT pg_try_advisory_xact_lock(key) AS taken FROM unnest(%(keys)s::bigint[]) AS key) AS locked;

-- name: referenced_accounts
SELECT debit_account_id, credit_account_id FROM transfers WHERE id = ANY(%(transfer_ids)s::uuid[]);

-- name: lock_accounts_session
-- Retries only: session-level locks taken before the transaction begins (same key order), so the
-- retry's snapshot is taken after competing writers committed. Released by unlock_accounts_session.
SELECT count(pg_advisory_lock(key)) FROM unnest(%(keys)s::bigint[]) AS key;

-- name: unlock_accounts_session
SELECT count(pg_advisory_unlock(key)) FROM unnest(%(keys)s::bigint[]) AS key;

-- name: load_assets
SELECT code, scale FROM assets WHERE code = ANY(%(codes)s::text[]);

-- name: load_accounts
SELECT id, asset, debits_pending::text, debits_posted::text, credits_pending::text,
       credits_posted::text, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
       version, metadata::text, created_at
FROM accounts
WHERE id = ANY(%(account_ids)s::uuid[]);

-- name: load_holds
SELECT transfer_id, state, posted_amount::text, amount::text
FROM holds
WHERE transfer_id = ANY(%(transfer_ids)s::uuid[]);

-- name: load_reversed_totals
SELECT reverses_transfer_id, sum(amount)::text
FROM transfers
WHERE reverses_transfer_id = ANY(%(transfer_ids)s::uuid[])
GROUP BY reverses_transfer_id;

-- name: insert_assets
INSERT INTO assets (code, scale, created_at)
SELECT code, scale, %(now)s FROM unnest(%(codes)s::text[], %(scales)s::smallint[]) AS u(code, scale);

-- name: insert_accounts
INSERT INTO accounts (id, asset, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
                      metadata, created_at)
SELECT id, asset, dmnec, cmned, metadata, %(now)s
FROM unnest(%(ids)s::uuid[], %(assets)s::text[], %(dmnec)s::boolean[], %(cmned)s::boolean[],
            %(metadata)s::jsonb[]) AS u(id, asset, dmnec, cmned, metadata);

-- name: insert_transfers
INSERT INTO transfers (id, request_id, kind, debit_account_id, credit_account_id, amount, asset,
                       pending_id, reverses_transfer_id, expires_at, metadata, created_at)
SELECT id, request_id, kind, debit_id, credit_id, amount, asset, pending_id, reverses_id,
       expires_at, metadata, %(now)s
FROM unnest(%(ids)s::uuid[], %(request_ids)s::text[], %(kinds)s::smallint[], %(debit_ids)s::uuid[],
            %(credit_ids)s::uuid[], %(amounts)s::numeric[], %(assets)s::text[],
            %(pending_ids)s::uuid[], %(reverses_ids)s::uuid[], %(expires_at)s::timestamptz[],
            %(metadata)s::jsonb[])
     AS u(id, request_id, kind, debit_id, credit_id, amount, asset, pending_id, reverses_id,
          expires_at, metadata);

-- name: insert_entries
INSERT INTO entries (transfer_id, account_id, side, kind, pending_change, posted_change,
                     account_version, debits_pending, debits_posted, credits_pending,
                     credits_posted, created_at)
SELECT transfer_id, account_id, side, kind, pending_change, posted_change, version, dp, dpo, cp,
       cpo, %(now)s
FROM unnest(%(transfer_ids)s::uuid[], %(account_ids)s::uuid[], %(sides)s::smallint[],
            %(kinds)s::smallint[], %(pending_changes)s::numeric[], %(posted_changes)s::numeric[],
            %(versions)s::bigint[], %(dp)s::numeric[], %(dpo)s::numeric[], %(cp)s::numeric[],
            %(cpo)s::numeric[])
     WITH ORDINALITY
     AS u(transfer_id, account_id, side, kind, pending_change, posted_change, version, dp, dpo, cp,
          cpo, position)
ORDER BY position;

-- name: insert_holds
INSERT INTO holds (transfer_id, debit_account_id, credit_account_id, amount, state, expires_at)
SELECT id, debit_id, credit_id, amount, 1, expires_at
FROM unnest(%(ids)s::uuid[], %(debit_ids)s::uuid[], %(credit_ids)s::uuid[], %(amounts)s::numeric[],
            %(expires_at)s::timestamptz[]) AS u(id, debit_id, credit_id, amount, expires_at);

-- name: update_holds
-- The final state of every hold the batch touched (adjusted, posted, voided or expired). Only
-- PENDING holds can be touched: the WHERE clause and the trigger both refuse a second transition.
UPDATE holds AS h
SET state = u.state, posted_amount = u.posted_amount, settled_by = u.settled_by, amount = u.amount
FROM unnest(%(ids)s::uuid[], %(states)s::smallint[], %(posted_amounts)s::numeric[],
            %(settled_by)s::uuid[], %(amounts)s::numeric[]) AS u(id, state, posted_amount, settled_by, amount)
WHERE h.transfer_id = u.id AND h.state = 1;

-- name: update_accounts
-- One update per account per batch. The version guard turns a lost update into a loud failure.
UPDATE accounts AS a
SET debits_pending = u.dp, debits_posted = u.dpo, credits_pending = u.cp, credits_posted = u.cpo,
    version = u.version
FROM unnest(%(ids)s::uuid[], %(dp)s::numeric[], %(dpo)s::numeric[], %(cp)s::numeric[],
            %(cpo)s::numeric[], %(versions)s::bigint[], %(old_versions)s::bigint[])
     AS u(id, dp, dpo, cp, cpo, version, old_version)
WHERE a.id = u.id AND a.version = u.old_version;

-- name: insert_outcomes
INSERT INTO request_outcomes (request_id, operation, request_hash, grpc_code, outcome, caller, created_at)
SELECT request_id, operation, request_hash, grpc_code, outcome, caller, %(now)s
FROM unnest(%(request_ids)s::text[], %(operations)s::text[], %(hashes)s::bytea[],
            %(codes)s::smallint[], %(outcomes)s::bytea[], %(callers)s::text[])
     AS u(request_id, operation, request_hash, grpc_code, outcome, caller);

-- name: insert_outbox
INSERT INTO outbox (event_type, account_ids, payload, created_at)
SELECT event_type, string_to_array(account_ids, ',')::uuid[], payload, %(now)s
FROM unnest(%(event_types)s::smallint[], %(account_ids)s::text[], %(payloads)s::bytea[])
     WITH ORDINALITY AS u(event_type, account_ids, payload, position)
ORDER BY position;
