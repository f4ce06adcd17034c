"""Named SQL queries, kept in reviewed .sql files beside this module.

A file holds several queries, each introduced by a `-- name: <identifier>` line; the comment lines
right after it document the query.
"""

from __future__ import annotations

import functools
import importlib.resources
import re

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@functools.cache
def load_from(package: str, file_stem: str) -> dict[str, str]:
    """All queries of `<file_stem>.sql` in `package`, by name (the chain daemons and the card
    gateway keep their own .sql files in the same format)."""
    text = importlib.resources.files(package).joinpath(f"{file_stem}.sql").read_text()
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        assert name not in queries, f"duplicate query name {name} in {package}/{file_stem}.sql"
        queries[name] = body.strip()
    return queries


def load(file_stem: str) -> dict[str, str]:
    """All queries of `<file_stem>.sql` beside this module, by name."""
    return load_from(__package__, file_stem)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def positional(query: str) -> tuple[str, tuple[str, ...]]:
    """The query with `%(name)s` turned into `$1, $2...` (one number per name), and the names in
    number order. For psycopg's RawCursor: psycopg re-parses a query with more than 50 parameters
    or 4 KB of text on every execution, which costs more than the rest of a small batch."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PLACEHOLDER.sub(number, query), tuple(names)
