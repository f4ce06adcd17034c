"""Named SQL queries of the chain daemons, in reviewed .sql files beside this module.

Same format as ledger_server/queries: a `-- name: <identifier>` line starts each query, the comment
lines after it document it.
"""

from __future__ import annotations

import functools
import importlib.resources
import re

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@functools.cache
def load(file_stem: str) -> dict[str, str]:
    text = importlib.resources.files(__package__).joinpath(f"{file_stem}.sql").read_text()
    parts = _NAME.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        assert name not in found, f"duplicate query name {name} in {file_stem}.sql"
        found[name] = body.strip()
    return found
