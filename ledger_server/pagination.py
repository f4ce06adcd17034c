"""Opaque page tokens: the last key of the previous page, bound to the query that produced it."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from ledger_server.errors import LedgerError, invalid

T = TypeVar("T")


def uuid_key(value: Any) -> uuid.UUID:
    return uuid.UUID(str(value))


def int_key(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError("not a position")
    return value


def text_key(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 255 or not value.isprintable():
        raise ValueError("not a key")
    return value

_TOKEN_CHARS_MAX = 1024


def encode(last_key: Any, query: Any) -> str:
    body = json.dumps({"k": last_key, "q": _fingerprint(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, query: Any, parse: Callable[[Any], T]) -> T | None:
    """The last key of the previous page (checked by `parse`), or None for the first page.

    A token is refused when it was made for another query (other filters), so a client cannot
    silently skip rows by changing filters mid-listing; tokens are not secret, so their key is
    validated like any other input.
    """
    if not token:
        return None
    try:
        if len(token) > _TOKEN_CHARS_MAX:
            raise ValueError("too long")
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if body["q"] != _fingerprint(query):
            raise ValueError("made for another query")
        return parse(body["k"])
    except (ValueError, KeyError, TypeError, AttributeError, LedgerError) as error:
        raise invalid("INVALID_PAGE_TOKEN", f"page_token is not valid here ({error})", field="page_token") from None


def _fingerprint(query: Any) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]
