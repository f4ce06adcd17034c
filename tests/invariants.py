"""Ledger-wide checks shared by the concurrency, restart and fault tests."""

from __future__ import annotations

import psycopg

from ledger_server.verify import verify

NEGATIVE_EVER = """
SELECT e.account_id::text, e.account_version
FROM entries AS e JOIN accounts AS a ON a.id = e.account_id
WHERE (a.debits_must_not_exceed_credits AND e.debits_pending + e.debits_posted > e.credits_posted)
   OR (a.credits_must_not_exceed_debits AND e.credits_pending + e.credits_posted > e.debits_posted)
LIMIT 10
"""


def assert_ledger_consistent(database_url: str) -> None:
    """Every invariant of ledger-verify holds, and no limited account was ever past its limit."""
    report = verify(database_url)
    assert report.ok, report.violations
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(NEGATIVE_EVER).fetchall()
    assert rows == [], f"limit broken at some point in history: {rows}"


def transfers_by_request_id(database_url: str) -> dict[str, list[str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT request_id, id::text FROM transfers").fetchall()
    found: dict[str, list[str]] = {}
    for request_id, transfer_id in rows:
        found.setdefault(request_id, []).append(transfer_id)
    return found
