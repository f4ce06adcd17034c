"""API keys: `lk_<caller id hex>_<secret>`; the server keeps only a salted SHA-256 of the secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import uuid
from dataclasses import dataclass

_KEY = re.compile(r"lk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
SECRET_BYTES = 32


@dataclass(frozen=True)
class NewKey:
    caller_id: uuid.UUID
    key: str
    salt: bytes
    secret_hash: bytes


def secret_hash(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def new_key(caller_id: uuid.UUID) -> NewKey:
    secret = base64.urlsafe_b64encode(os.urandom(SECRET_BYTES)).decode().rstrip("=")
    salt = os.urandom(16)
    return NewKey(caller_id, f"lk_{caller_id.hex}_{secret}", salt, secret_hash(salt, secret))


def parse_key(key: str) -> tuple[uuid.UUID, str] | None:
    """The caller id and secret of a well-formed key, or None."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    return uuid.UUID(hex=match.group(1)), match.group(2)


def key_matches(key_secret: str, salt: bytes, stored_hash: bytes) -> bool:
    """Constant-time comparison: timing never tells how much of a guess was right."""
    return hmac.compare_digest(secret_hash(salt, key_secret), stored_hash)
