-- Invariant checks of ledger-verify (ledger_server/verify.py). Each query returns the rows that
-- BREAK its invariant (none on a healthy ledger). They run in one REPEATABLE READ, READ ONLY
-- transaction: one consistent snapshot, no locks, writes go on.

-- name: assets_not_balanced
-- Double entry: per asset, total debits equal total credits, posted and pending.
SELECT asset,
       sum(debits_posted)::text AS debits_posted, sum(credits_posted)::text AS credits_posted,
       sum(debits_pending)::text AS debits_pending, sum(credits_pending)::text AS credits_pending
FROM accounts
GROUP BY asset
HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending);

-- name: counters_not_sum_of_entries
-- Every counter equals the sum of its entries; the version equals the number of entries.
SELECT a.id::text AS account_id,
       a.debits_pending::text, coalesce(e.dp, 0)::text AS entries_debits_pending,
       a.debits_posted::text, coalesce(e.dpo, 0)::text AS entries_debits_posted,
       a.credits_pending::text, coalesce(e.cp, 0)::text AS entries_credits_pending,
       a.credits_posted::text, coalesce(e.cpo, 0)::text AS entries_credits_posted,
       a.version, coalesce(e.n, 0) AS entries
FROM accounts AS a
LEFT JOIN (
    SELECT account_id,
           sum(pending_change) FILTER (WHERE side = 1) AS dp,
           sum(posted_change) FILTER (WHERE side = 1) AS dpo,
           sum(pending_change) FILTER (WHERE side = 2) AS cp,
           sum(posted_change) FILTER (WHERE side = 2) AS cpo,
           count(*) AS n, max(account_version) AS max_version
    FROM entries GROUP BY account_id
) AS e ON e.account_id = a.id
WHERE a.debits_pending <> coalesce(e.dp, 0) OR a.debits_posted <> coalesce(e.dpo, 0)
   OR a.credits_pending <> coalesce(e.cp, 0) OR a.credits_posted <> coalesce(e.cpo, 0)
   OR a.version <> coalesce(e.n, 0) OR a.version <> coalesce(e.max_version, 0);

-- name: limits_broken
-- No-overdraft accounts never have debits (posted + pending) above posted credits, and likewise.
SELECT id::text AS account_id, debits_pending::text, debits_posted::text, credits_pending::text,
       credits_posted::text
FROM accounts
WHERE (debits_must_not_exceed_credits AND debits_pending + debits_posted > credits_posted)
   OR (credits_must_not_exceed_debits AND credits_pending + credits_posted > debits_posted);

-- name: pending_not_accounted
-- Every pending counter is exactly the sum of the account's open holds.
SELECT a.id::text AS account_id, a.debits_pending::text, coalesce(d.total, 0)::text AS open_debit_holds,
       a.credits_pending::text, coalesce(c.total, 0)::text AS open_credit_holds
FROM accounts AS a
LEFT JOIN (SELECT debit_account_id AS id, sum(amount) AS total FROM holds WHERE state = 1
           GROUP BY debit_account_id) AS d ON d.id = a.id
LEFT JOIN (SELECT credit_account_id AS id, sum(amount) AS total FROM holds WHERE state = 1
           GROUP BY credit_account_id) AS c ON c.id = a.id
WHERE a.debits_pending <> coalesce(d.total, 0) OR a.credits_pending <> coalesce(c.total, 0);

-- name: holds_inconsistent
-- Each hold is a HOLD transfer; a settled hold has exactly one settling transfer of the right kind;
-- its current amount is the original plus its adjustments (kinds 7 and 8).
SELECT h.transfer_id::text AS hold_id, h.state, t.kind AS hold_kind, count(s.id) AS settlements,
       string_agg(s.kind::text, ',') AS settlement_kinds
FROM holds AS h
JOIN transfers AS t ON t.id = h.transfer_id
LEFT JOIN transfers AS s ON s.pending_id = h.transfer_id AND s.kind IN (3, 4, 5)
LEFT JOIN (SELECT pending_id, sum(CASE kind WHEN 7 THEN amount ELSE -amount END) AS delta
           FROM transfers WHERE kind IN (7, 8) GROUP BY pending_id) AS adj ON adj.pending_id = h.transfer_id
GROUP BY h.transfer_id, h.state, t.kind, h.settled_by, h.posted_amount, h.amount, t.amount, adj.delta
HAVING t.kind <> 2
    OR (h.state = 1 AND count(s.id) <> 0)
    OR (h.state <> 1 AND count(s.id) <> 1)
    OR (h.state = 2 AND (min(s.kind) <> 3 OR min(s.amount) <> h.posted_amount))
    OR (h.state = 3 AND min(s.kind) <> 4)
    OR (h.state = 4 AND min(s.kind) <> 5)
    OR (h.state <> 1 AND h.settled_by IS DISTINCT FROM min(s.id::text)::uuid)
    OR h.amount <> t.amount + coalesce(adj.delta, 0);

-- name: entries_not_double
-- Every transfer has exactly two entries: one debit, one credit, with the same changes.
SELECT t.id::text AS transfer_id, count(e.id) AS entries
FROM transfers AS t
LEFT JOIN entries AS e ON e.transfer_id = t.id
GROUP BY t.id
HAVING count(e.id) <> 2
    OR count(*) FILTER (WHERE e.side = 1) <> 1
    OR count(DISTINCT (e.pending_change, e.posted_change)) <> 1;

-- name: over_reversed
SELECT o.id::text AS transfer_id, o.amount::text, sum(r.amount)::text AS reversed
FROM transfers AS o
JOIN transfers AS r ON r.reverses_transfer_id = o.id
GROUP BY o.id, o.amount
HAVING sum(r.amount) > o.amount;

-- name: transfers_without_outcome
-- Every client transfer's request id maps to exactly one stored successful outcome.
-- (Expiries are server-made, keyed "expire:<hold id>", and have none.)
SELECT t.id::text AS transfer_id, t.request_id, o.grpc_code
FROM transfers AS t
LEFT JOIN request_outcomes AS o ON o.request_id = t.request_id
WHERE t.kind <> 5 AND (o.request_id IS NULL OR o.grpc_code <> 0);
