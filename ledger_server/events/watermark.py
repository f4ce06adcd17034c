"""The safe watermark of the outbox: the highest sequence below which no event can still appear.

Identity values are drawn before commit, so a reader can see sequence 11 committed while 10 is
still in flight (another replica, or the same one). Delivering 11 then would break order, and a
consumer resuming "after 11" would never see 10.

Why not `txid < pg_snapshot_xmin(pg_current_snapshot())` alone: it proves a row's transaction is
finished, not that no lower sequence is still coming. Transaction ids are assigned at a
transaction's first write and sequences at its outbox insert, so the two orders differ: T1 (xid
100) and T2 (xid 105) both running, T2 draws 10, T1 draws 11 and commits; xmin is 105, row 11
(txid 100) passes the filter, and 10 arrives later (tests/test_events_stream.py reproduces it).
A snapshot's in-progress list (xip) is not enough either: a running transaction whose id is at or
above the snapshot's xmax (here T2 once T1 has committed) is not listed in it.

The rule used here, with its proof:
  * A trigger on `outbox` (migration 0002) assigns a transaction its id BEFORE its first sequence
    is drawn, and sequences are drawn in time order (identity cache 1).
  * A probe is one statement. Its snapshot S is taken first; M is the highest sequence visible in
    S. Then R, the ids of the transactions of this database running at that point, is read from
    the process array (pg_stat_activity.backend_xid; pg_prepared_xacts).
  * Every sequence <= M was drawn before M's transaction committed, hence before S, by a
    transaction that already had its id then. It committed before S (visible in S and later), or
    aborted (never visible), or was running at S: then at the later read of R it is either in R or
    already finished.
  * So once every transaction in R has finished, every event with sequence <= M is visible to any
    snapshot taken afterwards, and no other will ever appear at or below M: M is safe.
"Finished" is checked by the next probe's R. When R is empty, M is safe at once: the usual case of
a wake-up after a commit on a quiet database (one query). Otherwise the probe is kept pending and
settled by a later one (at the next NOTIFY or a short recheck). A long-running writing transaction
in this database holds the watermark back until it ends; other databases on the cluster do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from ledger_server import queries

Q = queries.load("events")


@dataclass(frozen=True)
class _Probe:
    max_sequence: int
    running: tuple[str, ...]


class WatermarkTracker:
    """Advances the safe watermark, one probe at a time. Not thread-safe: one owner thread."""

    def __init__(self, start: int = 0) -> None:
        assert start >= 0
        self.safe = start
        self._pending: _Probe | None = None

    @property
    def waiting(self) -> bool:
        """True while a probe waits for transactions that were running when it was taken."""
        return self._pending is not None

    def advance(self, conn: psycopg.Connection[Any]) -> int:
        """Probe once (conn in autocommit mode) and return the safe watermark, never lower than before."""
        pending = list(self._pending.running) if self._pending is not None else []
        row = conn.execute(Q["watermark_probe"], {"pending": pending}).fetchone()
        assert row is not None
        max_sequence, running, pending_settled = row
        probe = _Probe(int(max_sequence), tuple(running))
        if self._pending is not None and pending_settled:
            self.safe = max(self.safe, self._pending.max_sequence)
            self._pending = None
        if not probe.running:
            self.safe = max(self.safe, probe.max_sequence)
            self._pending = None
        elif probe.max_sequence > self.safe and self._pending is None:
            self._pending = probe
        return self.safe
