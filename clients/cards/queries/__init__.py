"""Named SQL queries of the card gateway (`-- name: <identifier>` sections of .sql files here)."""

from __future__ import annotations

import functools
import importlib.resources
import re

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@functools.cache
def load(file_stem: str) -> dict[str, str]:
    """All queries of `<file_stem>.sql`, by name."""
    text = importlib.resources.files(__package__).joinpath(f"{file_stem}.sql").read_text()
    parts = _NAME.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        assert name not in found, f"duplicate query {name} in {file_stem}.sql"
        found[name] = body.strip()
    return found
