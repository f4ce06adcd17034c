-- Queries of the outbox readers (WatchEvents and the webhook fan-out). See docs/events.md.

-- name: watermark_probe
-- One probe of the safe watermark (ledger_server/events/watermark.py). The statement's snapshot is
-- taken first: max_sequence is the highest sequence it shows. The transactions of THIS database
-- running afterwards are then read from the process array (pg_stat_activity.backend_xid, visible to
-- every role; prepared transactions too): `running`. `pending_settled` says whether every
-- transaction of the pending probe's `running` list has finished since. (Transactions of other
-- databases on the cluster never write our outbox, so they are never waited for.)
WITH running AS (
    SELECT backend_xid::text AS xid FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL
    UNION
    SELECT transaction::text FROM pg_prepared_xacts WHERE database = current_database()
)
SELECT (SELECT coalesce(max(sequence), 0) FROM outbox) AS max_sequence,
       ARRAY(SELECT xid FROM running ORDER BY xid) AS running,
       NOT EXISTS (SELECT 1 FROM running WHERE running.xid = ANY (%(pending)s::text[])) AS pending_settled

-- name: outbox_after
-- Events after a position, up to the safe watermark, optionally filtered; keyset on the primary key.
SELECT sequence, event_type, payload
FROM outbox
WHERE sequence > %(after)s AND sequence <= %(upto)s
  AND (cardinality(%(event_types)s::smallint[]) = 0 OR event_type = ANY (%(event_types)s::smallint[]))
  AND (cardinality(%(account_ids)s::uuid[]) = 0 OR account_ids && %(account_ids)s::uuid[])
ORDER BY sequence
LIMIT %(limit)s

-- name: outbox_max_sequence
-- The highest committed sequence (a new endpoint starts after it).
SELECT coalesce(max(sequence), 0) FROM outbox
