"""`ledger-verify`: check every ledger invariant on a live database without stopping writes.

Exits 0 when all hold; otherwise prints each broken invariant with the offending rows and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ledger_server import queries

Q = queries.load("verify")
ROWS_SHOWN_MAX = 20


@dataclass
class Report:
    violations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def verify(conninfo: str) -> Report:
    """Run every check in one consistent snapshot."""
    report = Report()
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for name, sql in Q.items():
            cursor = conn.execute(sql)
            columns = [c.name for c in cursor.description or []]
            rows = cursor.fetchmany(ROWS_SHOWN_MAX)
            report.checked.append(name)
            if rows:
                report.violations[name] = [dict(zip(columns, row, strict=True)) for row in rows]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ledger-verify", description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("LEDGER_DATABASE_URL"), required=False)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or LEDGER_DATABASE_URL is required")
    report = verify(args.database_url)
    if args.json:
        print(json.dumps({"ok": report.ok, "checked": report.checked, "violations": report.violations}, default=str))
    else:
        for name in report.checked:
            print(f"{'FAIL' if name in report.violations else 'ok  '} {name}")
            for row in report.violations.get(name, []):
                print(f"       {row}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
