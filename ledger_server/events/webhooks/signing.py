"""Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).

The key is the base64 part of the endpoint's `whsec_...` secret. During a rotation grace period
every unexpired secret signs, and the header lists the signatures separated by spaces, so a
receiver holding either the old or the new secret accepts the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh secret: `whsec_` + base64 of 32 random bytes (the scheme allows 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    assert secret.startswith(SECRET_PREFIX), "not a whsec_ secret"
    key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    assert 24 <= len(key) <= 64, "secret key must be 24..64 bytes"
    return key


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_in_use: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret in use, newest first."""
    assert secrets_in_use, "an endpoint always has a current secret"
    return " ".join(signature(s, message_id, timestamp, body) for s in secrets_in_use)
