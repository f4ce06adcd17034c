"""Processor request signatures (the Standard Webhooks scheme) on the raw body.

Headers: `webhook-id` (the delivery's id, the same on every retry), `webhook-timestamp` (Unix
seconds of this attempt) and `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`. Several signatures (and several secrets on our side) allow rotating
the secret without downtime. A timestamp more than `tolerance_s` away from our clock is stale.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300
HEADER_MAX = 4096


class SignatureError(Exception):
    """Why a request was refused: `reason` is one of missing_headers, stale, bad_signature."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_secret(secret: str) -> bytes:
    """`whsec_<base64>` -> the key bytes (24..64 bytes)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret looks like whsec_<base64 of 24-64 random bytes>")
    key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret must hold 24..64 bytes")
    return key


def new_secret() -> str:
    import secrets

    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers a processor sends with `body` (used by the simulator and the tests)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(decode_secret(secret), message_id, stamp, body),
        "content-type": "application/json",
    }


@dataclass(frozen=True)
class VerifiedRequest:
    message_id: str
    timestamp: int


class SignatureVerifier:
    """Checks a request against any of the configured secrets, in constant time."""

    def __init__(self, secrets: Sequence[str], tolerance_s: int = TOLERANCE_S) -> None:
        assert secrets, "at least one webhook secret is required"
        assert 0 < tolerance_s <= 3600, tolerance_s
        self._keys = [decode_secret(s) for s in secrets]
        self._tolerance_s = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> VerifiedRequest:
        message_id = headers.get("webhook-id", "")
        stamp_text = headers.get("webhook-timestamp", "")
        header = headers.get("webhook-signature", "")
        present = message_id and stamp_text and header
        if not present or max(map(len, (message_id, stamp_text, header))) > HEADER_MAX:
            raise SignatureError("missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required")
        if not stamp_text.isascii() or not stamp_text.isdigit() or len(stamp_text) > 12:
            raise SignatureError("stale", "webhook-timestamp must be Unix seconds")
        stamp = int(stamp_text)
        current = time.time() if now is None else now
        if abs(current - stamp) > self._tolerance_s:
            raise SignatureError("stale", f"webhook-timestamp is more than {self._tolerance_s}s from our clock")
        offered = [part for part in header.split(" ") if part.startswith("v1,")]
        expected = [sign(key, message_id, stamp, body) for key in self._keys]
        # Compare every pair (no early exit on a match position): constant time in the secret.
        matched = False
        for candidate in offered[:8]:
            for wanted in expected:
                matched |= hmac.compare_digest(candidate.encode(), wanted.encode())
        if not matched:
            raise SignatureError("bad_signature", "no signature matches")
        return VerifiedRequest(message_id, stamp)
