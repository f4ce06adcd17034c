-- Queries of the outbox readers (WatchEvents and the webhook fan-out). See docs/events.md.

-- name: watermark_probe
-- One probe of the safe watermark (ledger_server/events/watermark.py): the statement's snapshot,
-- the highest outbox sequence it shows, and, for that snapshot and for the pending probe's, whether
-- every transaction of THIS database listed as running in it has finished (transactions of other
-- databases on the cluster never write our outbox, so they are not waited for). Running transactions
-- are read after the snapshot, from the process array (pg_stat_activity.backend_xid, visible to
-- every role) and the prepared transactions; xid8 values are compared modulo 2^32.
WITH snap AS (SELECT pg_current_snapshot() AS current),
running AS (
    SELECT backend_xid::text AS xid FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL
    UNION ALL
    SELECT transaction::text FROM pg_prepared_xacts WHERE database = current_database()
)
SELECT snap.current::text AS snapshot,
       (SELECT coalesce(max(sequence), 0) FROM outbox) AS max_sequence,
       NOT EXISTS (
           SELECT 1 FROM pg_snapshot_xip(snap.current) AS listed(xid)
           JOIN running ON running.xid = (listed.xid::text::numeric % 4294967296)::text
       ) AS current_settled,
       NOT EXISTS (
           SELECT 1 FROM pg_snapshot_xip(%(pending)s::pg_snapshot) AS listed(xid)
           JOIN running ON running.xid = (listed.xid::text::numeric % 4294967296)::text
       ) AS pending_settled
FROM snap

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
