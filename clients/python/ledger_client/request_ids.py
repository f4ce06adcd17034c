"""Request ids: time-ordered UUIDv7 strings, generated once per logical call and reused on retries.

Time-ordered ids keep the server's `request_outcomes` index append-mostly and make ids sortable in
logs. Within one process they are strictly increasing: ids drawn in the same millisecond count up
in the 12-bit `rand_a` field (RFC 9562, method 1), so two calls never share an id.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

REQUEST_ID = re.compile(r"[\x21-\x7e]{1,255}")  # what the server accepts: 1..255 printable ASCII
_COUNTER_MAX = (1 << 12) - 1


class _Uuid7Source:
    """Monotonic UUIDv7 generator: Unix milliseconds, a per-millisecond counter, then random bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def next(self) -> uuid.UUID:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leave room to count up
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:  # 2048+ ids in one millisecond: borrow the next millisecond
                self._last_ms += 1
                self._counter = 0
            millis, counter = self._last_ms, self._counter
        assert 0 <= millis < (1 << 48) and 0 <= counter <= _COUNTER_MAX
        value = (millis << 80) | (0x7 << 76) | (counter << 64)
        value |= (0b10 << 62) | (int.from_bytes(os.urandom(8), "big") >> 2)
        return uuid.UUID(int=value)


_SOURCE = _Uuid7Source()


def new_request_id() -> str:
    """A fresh time-ordered request id (a UUIDv7 in canonical form)."""
    return str(_SOURCE.next())


def is_valid_request_id(value: str) -> bool:
    """Whether the server would accept this request id (checked client-side to save a round trip)."""
    return REQUEST_ID.fullmatch(value) is not None
