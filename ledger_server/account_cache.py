"""The posting engine's memory of the account rows it last committed: the warm path's input.

Why: a batch of plain transfers between accounts the writer has just written spends a whole round
trip (and a fifth to a quarter of PostgreSQL's work for a one-transfer batch) reading rows it knows. With
the rows remembered, such a batch takes its locks, writes and commits in ONE round trip
(posting.py, "the warm path").

Never trusted for money: every row taken from here is checked by the write itself, by its version,
which is the account's count of entries (every change moves it; ledger-verify checks it). Accounts the
batch changes are updated only where their version is still the remembered one, accounts it only
read are re-read FOR SHARE with their version, and under SERIALIZABLE a row changed after the
write's snapshot fails the statement. If anything differs (another writer, a replica, moved the
account), the write's guard rolls the batch back and the engine forgets those accounts and runs it
again on the read path. A wrong entry costs a retry, never a wrong balance.

Bounded: at most `max_entries` accounts, the least recently written forgotten first.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable

from ledger_server.state_machine import AccountState

MAX_ENTRIES = 50_000  # ~25 MB of AccountState in the writer; the benchmark's 10,000 accounts fit


class AccountCache:
    """Account rows as of this writer's last commit that touched them (insertion order = recency)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        assert max_entries > 0
        self._max = max_entries
        self._rows: dict[uuid.UUID, AccountState] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, AccountState] | None:
        """Every one of `ids`, or None as soon as one is not remembered (the batch reads them all)."""
        rows = self._rows
        found: dict[uuid.UUID, AccountState] = {}
        for account_id in ids:
            row = rows.get(account_id)
            if row is None:
                return None
            found[account_id] = row
        return found

    def remember(self, accounts: Iterable[AccountState]) -> None:
        """Rows a batch has just committed (or read under its locks and committed beside)."""
        rows = self._rows
        for account in accounts:
            rows.pop(account.id, None)  # re-inserted last: the most recent
            rows[account.id] = account
        excess = len(rows) - self._max
        if excess > 0:
            for account_id in list(itertools.islice(rows, excess)):
                del rows[account_id]

    def forget(self, ids: Iterable[uuid.UUID]) -> None:
        for account_id in ids:
            self._rows.pop(account_id, None)

    def clear(self) -> None:
        self._rows.clear()

