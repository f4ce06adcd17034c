"""The published retry schedule: how long to wait before each attempt, with jitter.

Default (as Svix publishes): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts
over about 27.5 hours; after the last one the delivery is dead (replayable). A receiver's
Retry-After on 429/502/503/504 postpones the next attempt (never sooner than the schedule, never
later than `retry_after_max_s`).
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from dataclasses import dataclass

DEFAULT_SCHEDULE = "0,5s,5m,30m,2h,5h,10h,10h"
ATTEMPTS_MAX = 50
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


def parse_duration(text: str) -> float:
    """'250ms', '5s', '5m', '2h', '1d' or plain seconds -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class RetrySchedule:
    """delays[i] is the wait before attempt i+1 (delays[0] is the first attempt: normally 0)."""

    delays: tuple[float, ...]
    jitter: float = 0.2  # each wait is scaled by a random factor in [1 - jitter, 1 + jitter]
    retry_after_max_s: float = 6 * 3600.0

    def __post_init__(self) -> None:
        assert 1 <= len(self.delays) <= ATTEMPTS_MAX, "1..50 attempts"
        assert all(d >= 0 for d in self.delays) and 0 <= self.jitter < 1 and self.retry_after_max_s >= 0

    @classmethod
    def parse(cls, text: str, jitter: float = 0.2, retry_after_max_s: float = 6 * 3600.0) -> RetrySchedule:
        return cls(tuple(parse_duration(p) for p in text.split(",") if p.strip()), jitter, retry_after_max_s)

    @property
    def attempts(self) -> int:
        return len(self.delays)

    def delay_after_failure(self, attempts_made: int, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next attempt after `attempts_made` failed ones, or None: give up (dead)."""
        assert attempts_made >= 1
        if attempts_made >= len(self.delays):
            return None
        delay = self.delays[attempts_made] * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_max_s))
        return delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 10**7))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
