"""Standard Webhooks signatures: the server signs, the SDK's verify accepts exactly the genuine,
fresh requests; rotation headers verify under either secret."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_client.webhooks import WebhookVerificationError, sign, verify
from ledger_server.events.webhooks.signing import new_secret, secret_key, signature, signature_header


def _headers(message_id: str, timestamp: int, signature_value: str) -> dict[str, str]:
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature_value}


def test_new_secrets_follow_the_scheme() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert len(secret_key(secret)) == 32
    assert new_secret() != secret


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=2048), message_id=st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                                           min_size=1, max_size=64))
def test_server_signature_verifies_in_the_sdk(body: bytes, message_id: str) -> None:
    secret = new_secret()
    now = int(time.time())
    header = signature_header([secret], message_id, now, body)
    verify(secret, body, _headers(message_id, now, header))
    assert header == sign(secret, message_id, now, body)


@settings(max_examples=40, deadline=None)
@given(body=st.binary(min_size=1, max_size=512), flip=st.integers(min_value=0))
def test_any_tampered_body_is_rejected(body: bytes, flip: int) -> None:
    secret = new_secret()
    now = int(time.time())
    header = signature(secret, "msg", now, body)
    tampered = bytearray(body)
    tampered[flip % len(body)] ^= 0x01
    with pytest.raises(WebhookVerificationError):
        verify(secret, bytes(tampered), _headers("msg", now, header))


def test_wrong_secret_stale_or_future_timestamp_and_malformed_headers_are_rejected() -> None:
    secret, other = new_secret(), new_secret()
    body = b'{"type":"transfer.posted"}'
    now = int(time.time())
    good = signature(secret, "msg_1", now, body)
    verify(secret, body, _headers("msg_1", now, good))
    with pytest.raises(WebhookVerificationError):
        verify(other, body, _headers("msg_1", now, good))
    with pytest.raises(WebhookVerificationError):  # another id: signatures bind the id
        verify(secret, body, _headers("msg_2", now, good))
    stale = now - 301
    with pytest.raises(WebhookVerificationError):
        verify(secret, body, _headers("msg_1", stale, signature(secret, "msg_1", stale, body)))
    future = now + 301
    with pytest.raises(WebhookVerificationError):
        verify(secret, body, _headers("msg_1", future, signature(secret, "msg_1", future, body)))
    for broken in ({}, _headers("msg_1", now, "v2," + good[3:]), _headers("msg_1", now, "v1,@@@"),
                   {"webhook-id": "msg_1", "webhook-timestamp": "soon", "webhook-signature": good}):
        with pytest.raises(WebhookVerificationError):
            verify(secret, body, broken)


def test_a_rotation_header_verifies_under_the_old_and_the_new_secret() -> None:
    old, new = new_secret(), new_secret()
    body = b"{}"
    now = int(time.time())
    header = signature_header([new, old], "msg", now, body)
    assert len(header.split(" ")) == 2
    verify(old, body, _headers("msg", now, header))
    verify(new, body, _headers("msg", now, header))
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), body, _headers("msg", now, header))


def test_header_names_are_case_insensitive() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = {"Webhook-Id": "m", "Webhook-Timestamp": str(now), "Webhook-Signature": signature(secret, "m", now, b"x")}
    verify(secret, b"x", headers)
