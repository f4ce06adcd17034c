"""Bounded exponential backoff with jitter: how the daemons wait out a node or a database that is
down or slow, instead of crash-looping."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base_s: float = 0.5, max_s: float = 30.0) -> None:
        assert 0 < base_s <= max_s
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt: base * 2^failures (capped), jittered by -25%..0."""
        delay = min(self.max_s, self.base_s * 2 ** min(self.failures, 30))
        self.failures += 1
        jittered: float = delay * random.uniform(0.75, 1.0)
        return jittered

    def reset(self) -> None:
        self.failures = 0
