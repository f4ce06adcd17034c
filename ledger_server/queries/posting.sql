-- Named queries of the posting engine (ledger_server/posting.py). Each batch of requests runs them
-- once, set-based: the locks and reads as READ COMMITTED statements in one pipeline, then the write
-- in one SERIALIZABLE transaction.

-- name: load_outcomes
-- Stored outcomes of the batch's request ids: replays and reused-key detection. Read before the
-- locks: an outcome never changes once stored, and a miss that another writer fills before this
-- batch commits ends in a unique violation on insert, whose retry finds and replays it.
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
-- Session-level advisory locks on every account the batch touches, in ascending key order (the
-- caller sorts and dedupes the keys, so two writers never deadlock), WAITED for. Taken before any
-- read of the batch and held until after its COMMIT (commit), so the reads that follow (each
-- its own READ COMMITTED statement, see posting.py) see every commit of whoever held a lock before,
-- and nothing can change those accounts until this batch has committed. Returns the clock read
-- once all are held: the batch's timestamp. A warm batch (posting.py) sends it as the first statement
-- of its write transaction instead, reads nothing, and ignores the clock.
SELECT clock_timestamp() AS now
FROM (SELECT count(pg_advisory_lock(key)) FROM unnest(%(keys)s::bigint[]) AS key) AS locked;

-- name: begin_batch
-- The batch's write transaction: the first statement of the write's pipeline (or, for a batch with
-- side effects, which write while they are applied, of a segment after the reads' sync); its
-- snapshot is taken by its first statement (the write), after the locks and reads.
BEGIN ISOLATION LEVEL SERIALIZABLE;

-- name: commit
-- Sent in one pipeline behind the write and before unlock_all: the locks go only once the commit is
-- durable. If the write or the COMMIT fails, the pipeline skips what follows and abandon_batch
-- releases the locks.
COMMIT;

-- name: unlock_all
SELECT pg_advisory_unlock_all();

-- name: abandon_batch
-- After any failure: end the transaction if one is open, and release every lock of this session.
ROLLBACK; SELECT pg_advisory_unlock_all();

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

-- name: write_effects
-- Everything a batch writes, in ONE statement (the engine sends COMMIT right behind it): its
-- transfers, their entries (with each account's counters after the entry), new holds (with their
-- final state when the same batch already settled them), holds it settled or adjusted, one update
-- per account, the request outcomes and the outbox events. Sibling sub-statements share one
-- snapshot, so none reads another's rows; foreign keys are checked at the end of the statement,
-- so their order does not matter. Arrays arrive as PostgreSQL array literals (posting.py builds
-- them with one join per column). ledger_write_guard fails the statement when an account's
-- version or a hold's state changed since it was read (or remembered, on the warm path): a lost
-- update is never written, and no decision stands on a row that is no longer current.
WITH new_transfers AS (
    INSERT INTO transfers (id, request_id, kind, debit_account_id, credit_account_id, amount, asset,
                           pending_id, reverses_transfer_id, expires_at, metadata, created_at)
    SELECT id, request_id, kind, debit_id, credit_id, amount, asset, pending_id, reverses_id,
           expires_at, metadata, %(now)s
    FROM unnest(%(t_ids)s::uuid[], %(t_request_ids)s::text[], %(t_kinds)s::smallint[],
                %(t_debit_ids)s::uuid[], %(t_credit_ids)s::uuid[], %(t_amounts)s::numeric[],
                %(t_assets)s::text[], %(t_pending_ids)s::uuid[], %(t_reverses_ids)s::uuid[],
                %(t_expires_at)s::timestamptz[], %(t_metadata)s::jsonb[])
         AS u(id, request_id, kind, debit_id, credit_id, amount, asset, pending_id, reverses_id,
              expires_at, metadata)
    RETURNING 1
), new_entries AS (
    INSERT INTO entries (transfer_id, account_id, side, kind, pending_change, posted_change,
                         account_version, debits_pending, debits_posted, credits_pending,
                         credits_posted, created_at)
    SELECT transfer_id, account_id, side, kind, pending_change, posted_change, version, dp, dpo, cp,
           cpo, %(now)s
    FROM unnest(%(e_transfer_ids)s::uuid[], %(e_account_ids)s::uuid[], %(e_sides)s::smallint[],
                %(e_kinds)s::smallint[], %(e_pending_changes)s::numeric[],
                %(e_posted_changes)s::numeric[], %(e_versions)s::bigint[], %(e_dp)s::numeric[],
                %(e_dpo)s::numeric[], %(e_cp)s::numeric[], %(e_cpo)s::numeric[])
         WITH ORDINALITY
         AS u(transfer_id, account_id, side, kind, pending_change, posted_change, version, dp, dpo,
              cp, cpo, position)
    ORDER BY position
    RETURNING 1
), new_holds AS (
    INSERT INTO holds (transfer_id, debit_account_id, credit_account_id, amount, state,
                       posted_amount, settled_by, expires_at)
    SELECT id, debit_id, credit_id, amount, state, posted_amount, settled_by, expires_at
    FROM unnest(%(h_ids)s::uuid[], %(h_debit_ids)s::uuid[], %(h_credit_ids)s::uuid[],
                %(h_amounts)s::numeric[], %(h_states)s::smallint[], %(h_posted_amounts)s::numeric[],
                %(h_settled_by)s::uuid[], %(h_expires_at)s::timestamptz[])
         AS u(id, debit_id, credit_id, amount, state, posted_amount, settled_by, expires_at)
    RETURNING 1
), changed_holds AS (
    -- Only PENDING holds can change: the WHERE clause and the trigger both refuse a second
    -- transition, and the guard below turns a missing row into a retry.
    UPDATE holds AS h
    SET state = u.state, posted_amount = u.posted_amount, settled_by = u.settled_by, amount = u.amount
    FROM unnest(%(c_ids)s::uuid[], %(c_states)s::smallint[], %(c_posted_amounts)s::numeric[],
                %(c_settled_by)s::uuid[], %(c_amounts)s::numeric[])
         AS u(id, state, posted_amount, settled_by, amount)
    WHERE h.transfer_id = u.id AND h.state = 1
    RETURNING 1
), changed_accounts AS (
    -- One update per account per batch, guarded by the version the batch read.
    UPDATE accounts AS a
    SET debits_pending = u.dp, debits_posted = u.dpo, credits_pending = u.cp,
        credits_posted = u.cpo, version = u.version
    FROM unnest(%(a_ids)s::uuid[], %(a_dp)s::numeric[], %(a_dpo)s::numeric[], %(a_cp)s::numeric[],
                %(a_cpo)s::numeric[], %(a_versions)s::bigint[], %(a_old_versions)s::bigint[])
         AS u(id, dp, dpo, cp, cpo, version, old_version)
    WHERE a.id = u.id AND a.version = u.old_version
    RETURNING 1
), unchanged_accounts AS (
    -- Accounts the batch only read (a rejected transfer's), when it took them from the writer's
    -- memory (the warm path, ledger_server/account_cache.py): still at the version it used. FOR
    -- SHARE, because under SERIALIZABLE a plain read would see the snapshot, and a row changed
    -- after it must fail the batch, not pass as current. Empty on the read path.
    SELECT 1
    FROM accounts AS a
    JOIN unnest(%(r_ids)s::uuid[], %(r_versions)s::bigint[]) AS u(id, version)
      ON a.id = u.id AND a.version = u.version
    FOR SHARE OF a
), new_outcomes AS (
    INSERT INTO request_outcomes (request_id, operation, request_hash, grpc_code, outcome, caller,
                                  created_at)
    SELECT request_id, operation, request_hash, grpc_code, outcome, caller, %(now)s
    FROM unnest(%(o_request_ids)s::text[], %(o_operations)s::text[], %(o_hashes)s::bytea[],
                %(o_codes)s::smallint[], %(o_outcomes)s::bytea[], %(o_callers)s::text[])
         AS u(request_id, operation, request_hash, grpc_code, outcome, caller)
    RETURNING 1
), new_events AS (
    INSERT INTO outbox (event_type, account_ids, payload, created_at)
    SELECT event_type, string_to_array(account_ids, ',')::uuid[], payload, %(now)s
    FROM unnest(%(v_event_types)s::smallint[], %(v_account_ids)s::text[], %(v_payloads)s::bytea[])
         WITH ORDINALITY AS u(event_type, account_ids, payload, position)
    ORDER BY position
    RETURNING 1
)
SELECT ledger_write_guard((SELECT count(*) FROM changed_accounts) + (SELECT count(*) FROM unchanged_accounts),
                          cardinality(%(a_ids)s::uuid[]) + cardinality(%(r_ids)s::uuid[]),
                          (SELECT count(*) FROM changed_holds), cardinality(%(c_ids)s::uuid[]));
