"""Verify webhooks from the ledger (the Standard Webhooks scheme), in a receiver.

    from ledger_client.webhooks import verify, WebhookVerificationError

    try:
        verify(secret, request_body_bytes, request_headers)   # the raw body, before any JSON parsing
    except WebhookVerificationError:
        return 400
    # then dedupe on headers["webhook-id"] in the same transaction as the effect

A request is genuine when one of the `v1,` signatures in `webhook-signature` is the base64
HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}" under the endpoint's secret, compared in
constant time, and its timestamp is within `tolerance_s` (5 minutes) of now, which stops replays
of captured requests. During a secret rotation the header carries one signature per secret in use,
so either the old or the new secret verifies. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300
SIGNATURES_MAX = 16  # more than any rotation produces; bounds the work per request


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh webhook from the ledger."""


def verify(
    secret: str, body: bytes, headers: Mapping[str, str], *, tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise WebhookVerificationError unless the request is signed with `secret` and fresh."""
    lowered = {key.lower(): value for key, value in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not timestamp_text or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too far from now (stale or replayed)")
    expected = _sign(_key(secret), message_id, timestamp, body)
    for candidate in signatures.split(" ")[:SIGNATURES_MAX]:
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            return
    raise WebhookVerificationError("no matching v1 signature")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """A `v1,...` signature: for receivers' tests (the ledger signs on its side)."""
    return "v1," + base64.b64encode(_sign(_key(secret), message_id, timestamp, body)).decode()


def _key(secret: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not whsec_ + base64") from None


def _sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
