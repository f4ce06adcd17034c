"""Identifiers: time-ordered UUIDs (version 7), their text, and the advisory-lock key of an account."""

from __future__ import annotations

import functools
import os
import time
import uuid

UUID_TEXT_CACHE = 16_384  # ids remembered; a 1,000-transfer batch touches about 3,000


def new_uuid7() -> uuid.UUID:
    """A UUIDv7: 48-bit Unix milliseconds, then random bits; ordered by creation, index-friendly."""
    millis = time.time_ns() // 1_000_000
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(raw))


def account_lock_key(account_id: uuid.UUID) -> int:
    """The signed 64-bit advisory-lock key of an account: its random low half.

    Two accounts sharing a key only serialize against each other; correctness never depends on it.
    """
    return int.from_bytes(account_id.bytes[8:], "big", signed=True)


@functools.lru_cache(maxsize=UUID_TEXT_CACHE)
def uuid_text(value: uuid.UUID) -> str:
    """`str(value)`, remembered. A transfer's ids are written as text a dozen times per batch (its
    rows, entries, response, event and request hash), and `UUID.__str__` was 14% of the writer's
    time on 1,000-transfer batches (benchmarks/README.md); a cache hit costs a quarter of it."""
    return str(value)
