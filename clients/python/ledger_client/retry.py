"""When and how long to wait before retrying a call: the rules, pure and deterministic given a draw.

Rules (docs/sdk.md "Retries"):
- Retried: UNAVAILABLE, ABORTED, RESOURCE_EXHAUSTED, and DEADLINE_EXCEEDED of one attempt while the
  call's overall deadline still leaves time. Mutating calls resend the same request (same request
  id, same payload), so the server executes them at most once and replays the first outcome.
- Never retried: INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS (and everything else not
  listed above: NOT_FOUND, INTERNAL, CANCELLED, UNAUTHENTICATED, ...).
- Delay: exponential backoff with full jitter, uniform in [0, min(max, initial * multiplier^(n-1))],
  or the server's google.rpc.RetryInfo delay when it sent one (capped by `server_delay_max_s`).
- Bounded twice: by `max_attempts`, and by the overall deadline: no retry is started whose delay
  would leave less than `attempt_min_s` before the deadline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
NEVER_RETRIED_CODES = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS}
)
assert not RETRYABLE_CODES & NEVER_RETRIED_CODES


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the SDK's retries. The defaults suit online payment paths (seconds, not minutes)."""

    max_attempts: int = 6  # attempts in all, the first included
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    # one attempt's deadline, as the server's commit timeout; the call's overall deadline bounds it too
    attempt_timeout_s: float = 10.0
    attempt_min_s: float = 0.05  # don't start an attempt with less time than this before the deadline
    server_delay_max_s: float = 30.0  # a server-sent RetryInfo delay is capped at this

    def __post_init__(self) -> None:
        assert 1 <= self.max_attempts <= 100, self.max_attempts
        assert 0 < self.initial_backoff_s <= self.max_backoff_s <= 600, self
        assert 1.0 <= self.multiplier <= 10.0, self.multiplier
        assert 0 < self.attempt_timeout_s <= 3600, self.attempt_timeout_s
        assert 0 <= self.attempt_min_s < self.attempt_timeout_s, self.attempt_min_s
        assert 0 <= self.server_delay_max_s <= 3600, self.server_delay_max_s

    def backoff_ceiling_s(self, attempt: int) -> float:
        """The largest jittered delay after failed attempt number `attempt` (1-based)."""
        assert attempt >= 1, attempt
        exponent = min(attempt - 1, 64)  # far past max_backoff_s already; keeps the power finite
        return min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**exponent)

    def delay_before_retry(
        self,
        *,
        attempt: int,
        code: grpc.StatusCode,
        server_delay_s: float | None,
        remaining_s: float,
        draw: float,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise.

        `attempt` is the number of the attempt that just failed (1-based), `remaining_s` the time
        left before the call's overall deadline, `draw` a uniform random number in [0, 1).
        """
        assert 0.0 <= draw < 1.0, draw
        if code not in RETRYABLE_CODES or attempt >= self.max_attempts:
            return None
        if server_delay_s is not None and math.isfinite(server_delay_s):
            delay = min(max(0.0, server_delay_s), self.server_delay_max_s)
        else:
            delay = draw * self.backoff_ceiling_s(attempt)
        if remaining_s - delay < self.attempt_min_s:
            return None  # the next attempt could not finish before the deadline: fail now, not later
        return delay


@dataclass(frozen=True)
class RetryNotice:
    """What the SDK tells an `on_retry` observer (metrics, logs) before it sleeps and retries."""

    method: str  # the RPC, e.g. "CreateTransfer"
    attempt: int  # the attempt that just failed (1-based)
    request_id: str | None  # the same on every attempt of a mutating call
    code: grpc.StatusCode
    reason: str
    delay_s: float
