"""Opaque page tokens: the last key of the previous page, bound to the query that produced it."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from ledger_server.errors import invalid

_TOKEN_CHARS_MAX = 1024


def encode(last_key: Any, query: Any) -> str:
    body = json.dumps({"k": last_key, "q": _fingerprint(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode(token: str, query: Any) -> Any:
    """The last key of the previous page, or None for the first page.

    A token is refused when it was made for another query (other filters), so a client cannot
    silently skip rows by changing filters mid-listing.
    """
    if not token:
        return None
    try:
        if len(token) > _TOKEN_CHARS_MAX:
            raise ValueError("too long")
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if body["q"] != _fingerprint(query):
            raise ValueError("made for another query")
        return body["k"]
    except (ValueError, KeyError, TypeError) as error:
        raise invalid("INVALID_PAGE_TOKEN", f"page_token is not valid here ({error})", field="page_token") from None


def _fingerprint(query: Any) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]
