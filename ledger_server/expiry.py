"""Releases holds whose timeout passed, exactly once, within a few seconds of expiry.

A thread polls the `holds_due` partial index and submits ExpireHold jobs through the group
committer, so expiry takes the same locks and the same one-way state transition as a void: a hold
posted or voided concurrently is never expired too, and two replicas expiring at once release it
only once. Posts and voids of an expired-but-not-yet-released hold also release it first.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from psycopg_pool import ConnectionPool

from ledger_server import commands as c
from ledger_server.group_commit import Committer
from ledger_server.metrics import Metrics

log = logging.getLogger(__name__)

DUE_HOLDS = """
SELECT transfer_id FROM holds
WHERE state = 1 AND expires_at IS NOT NULL AND expires_at <= clock_timestamp()
ORDER BY expires_at
LIMIT %(limit)s
"""


class HoldExpirer:
    def __init__(
        self, pool: ConnectionPool[Any], committer: Committer, metrics: Metrics, interval_s: float = 1.0,
        batch_limit: int = 500,
    ) -> None:
        self._pool = pool
        self._committer = committer
        self._metrics = metrics
        self._interval_s = interval_s
        self._batch_limit = batch_limit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hold-expirer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.expire_due()
            except Exception:  # keep running: the next pass retries
                log.exception("hold expiry pass failed")

    def expire_due(self) -> int:
        """One pass: release up to batch_limit due holds; returns how many were submitted."""
        with self._pool.connection() as conn:
            due = [row[0] for row in conn.execute(DUE_HOLDS, {"limit": self._batch_limit}).fetchall()]
        for pending_id in due:
            if self._stop.is_set():
                break
            self._committer.submit(c.ExpireHold(pending_id), timeout_s=30)
        self._metrics.holds_expired.inc(len(due))
        return len(due)
