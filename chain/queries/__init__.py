"""Named SQL queries of the chain daemons, in reviewed .sql files beside this module (the format and
loader of ledger_server/queries)."""

from __future__ import annotations

from ledger_server.queries import load_from


def load(file_stem: str) -> dict[str, str]:
    """All queries of `<file_stem>.sql` here, by name."""
    return load_from(__package__, file_stem)
