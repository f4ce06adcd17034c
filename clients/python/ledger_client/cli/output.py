"""How ledgerctl prints: aligned tables for people, JSON for scripts.

JSON keeps money exact: amounts and counters are strings of minor units (JSON numbers lose
precision past 2^53 in most parsers), next to the asset's `scale` where a command knows it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ledger_client.errors import LedgerError
from ledger_client.money import format_major

MONEY_FIELDS = frozenset(
    {
        "amount",
        "debits_pending",
        "debits_posted",
        "credits_pending",
        "credits_posted",
        "pending_change",
        "posted_change",
        "posted_balance",
        "pending_balance",
        "available_balance",
    }
)


def jsonable(value: Any) -> Any:
    """Results (dataclasses) as JSON-ready data: money as strings, times as ISO 8601, enums by name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _field(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _field(name: str, value: Any) -> Any:
    if name in MONEY_FIELDS and isinstance(value, int):
        return str(value)
    return jsonable(value)


def money(minor: int, scale: int | None) -> str:
    """Minor units shown in major units when the scale is known ("12.50"), else as is."""
    return str(minor) if scale is None else format_major(minor, scale)


def when(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


class Output:
    def __init__(self, as_json: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def emit(self, data: Any, human: str) -> None:
        """Print `data` as JSON, or the human rendering."""
        if self.as_json:
            json.dump(jsonable(data), self.stdout, indent=2, sort_keys=False)
            self.stdout.write("\n")
        else:
            self.stdout.write(human.rstrip("\n") + "\n")

    def note(self, text: str) -> None:
        """A hint for people (stderr, never in JSON mode): it must not disturb piped output."""
        if not self.as_json:
            self.stderr.write(text.rstrip("\n") + "\n")

    def error(self, error: LedgerError | Exception, hint: str = "") -> None:
        if self.as_json:
            payload: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
            if isinstance(error, LedgerError):
                payload.update(
                    reason=error.reason,
                    code=error.code.name,
                    message=error.message,
                    metadata=error.metadata,
                    request_id=error.request_id,
                    attempts=error.attempts,
                )
            json.dump({"error": payload}, self.stderr)
            self.stderr.write("\n")
            return
        line = f"ledgerctl: {error}"
        if isinstance(error, LedgerError) and error.metadata:
            line += " (" + ", ".join(f"{k}={v}" for k, v in sorted(error.metadata.items())) + ")"
        self.stderr.write(line + "\n")
        if hint:
            self.stderr.write(hint + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A plain aligned table; columns listed in `right` (amounts) are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def pairs(items: Sequence[tuple[str, str]]) -> str:
    """A key/value listing for one record."""
    width = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in items)
