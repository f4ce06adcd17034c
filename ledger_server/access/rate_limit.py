"""Per-caller token buckets, evaluated atomically in Redis (one Lua call), shared by all replicas.

Redis is optional and may vanish at any moment: then each replica falls back to an in-process
bucket (fail-open, the default) or refuses (fail-closed). Nothing about money depends on it: a
rate-limit answer only ever decides whether a request is looked at, before any work.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)

# KEYS[1] bucket key; ARGV: rate per second, burst, cost. Uses Redis' clock so replicas agree.
# Returns {allowed (0/1), milliseconds until enough tokens}.
_TOKEN_BUCKET = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = burst; at = now_ms end
tokens = math.min(burst, tokens + (now_ms - at) * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait_ms}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float
    source: str  # "redis", "local" or "closed"


class _LocalBuckets:
    """The in-process fallback: the same algorithm, per replica."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> Decision:
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            tokens, at = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return Decision(True, 0.0, "local")
            self._buckets[key] = (tokens, now)
            return Decision(False, (cost - tokens) / self._rate, "local")


class RateLimiter:
    def __init__(
        self, redis_url: str | None, rate_per_s: float, burst: float, fail_open: bool = True,
        redis_timeout_s: float = 0.05, redis_retry_after_s: float = 2.0,
    ) -> None:
        assert rate_per_s > 0 and burst >= 1
        self._rate, self._burst, self._fail_open = rate_per_s, burst, fail_open
        self._local = _LocalBuckets(rate_per_s, burst)
        self._redis: redis.Redis | None = None
        self._script: Any = None
        self._redis_down_until = 0.0
        self._redis_retry_after_s = redis_retry_after_s
        if redis_url:
            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=redis_timeout_s, socket_connect_timeout=redis_timeout_s
            )
            self._script = self._redis.register_script(_TOKEN_BUCKET)

    def take(self, caller_id: str, cost: float = 1.0) -> Decision:
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                allowed, wait_ms = self._script(keys=[f"ledger:rate:{caller_id}"],
                                                args=[self._rate, self._burst, cost])
                return Decision(bool(allowed), int(wait_ms) / 1000.0, "redis")
            except redis.RedisError as error:
                # Do not hammer a dead Redis on every call: look again after a short pause.
                log.warning("rate limiter: Redis unavailable (%s); falling back", error)
                self._redis_down_until = time.monotonic() + self._redis_retry_after_s
        if self._redis is not None and not self._fail_open:
            return Decision(False, self._redis_retry_after_s, "closed")
        return self._local.take(caller_id, cost)
