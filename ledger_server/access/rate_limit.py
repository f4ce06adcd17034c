"""Per-caller token buckets, evaluated atomically in Redis (one Lua call), shared by all replicas.

Redis is optional and may vanish at any moment: then each replica falls back to an in-process
bucket (fail-open, the default) or refuses (fail-closed). Nothing about money depends on it: a
rate-limit answer only ever decides whether a request is looked at, before any work.

Leases: one Redis call per request cost more CPU than the rest of a transfer's handling (measured
~260 us of redis-py per call). So a replica takes tokens from the shared bucket in leases and spends
them locally for at most LEASE_TTL_S. A lease starts at one token (a slow caller is counted call by
call, exactly as without leases) and doubles each time the previous one was used up before it
expired, up to LEASE_TOKENS_MAX and to LEASE_WINDOW_S of the configured rate; it halves when one
expires unused. Leased tokens are taken from the shared bucket before they are spent, so leasing can
only under-admit (unused tokens of an expired lease are lost), never let a caller past its limit.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

log = logging.getLogger(__name__)
LEASE_TTL_S = 0.1
LEASE_TOKENS_MAX = 64
LEASE_WINDOW_S = 0.02
DENIAL_MEMORY_S = 0.05  # a refused caller is refused locally this long before Redis is asked again

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
    source: str  # "redis", "lease", "local" or "closed"


@dataclass
class _Lease:
    """Tokens taken from the shared bucket, spent locally until `expires`."""

    tokens: float
    expires: float
    size: int
    denied_until: float = 0.0  # Redis said no: until then (DENIAL_MEMORY_S at most), so does this replica


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
        self._lease_max = max(1, min(LEASE_TOKENS_MAX, int(rate_per_s * LEASE_WINDOW_S), int(burst)))
        self._leases: dict[str, _Lease] = {}
        self._leases_lock = threading.Lock()
        if redis_url:
            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=redis_timeout_s, socket_connect_timeout=redis_timeout_s
            )
            self._script = self._redis.register_script(_TOKEN_BUCKET)

    def take(self, caller_id: str, cost: float = 1.0) -> Decision:
        if self._redis is not None and time.monotonic() >= self._redis_down_until:
            size = self._spend_lease(caller_id, cost)
            if size == 0:
                return Decision(True, 0.0, "lease")
            if size < 0:
                return Decision(False, -size / 1000.0, "lease")
            key = f"ledger:rate:{caller_id}"
            try:
                if size > cost:  # ask for a lease; near the limit, fall back to the exact cost
                    allowed, _ = self._script(keys=[key], args=[self._rate, self._burst, size])
                    if allowed:
                        self._store_lease(caller_id, size - cost, size)
                        return Decision(True, 0.0, "redis")
                    size = 1
                allowed, wait_ms = self._script(keys=[key], args=[self._rate, self._burst, cost])
                self._store_lease(caller_id, 0, size if allowed else 1,
                                  0.0 if allowed else time.monotonic() + min(DENIAL_MEMORY_S, int(wait_ms) / 1000.0))
                return Decision(bool(allowed), int(wait_ms) / 1000.0, "redis")
            except redis.RedisError as error:
                # Do not hammer a dead Redis on every call: look again after a short pause.
                log.warning("rate limiter: Redis unavailable (%s); falling back", error)
                self._redis_down_until = time.monotonic() + self._redis_retry_after_s
        if self._redis is not None and not self._fail_open:
            return Decision(False, self._redis_retry_after_s, "closed")
        return self._local.take(caller_id, cost)

    def _spend_lease(self, caller_id: str, cost: float) -> int:
        """Spend from the caller's lease: 0 when it covered the cost, minus the milliseconds to wait
        while a denial holds, else the size of the lease to ask for."""
        now = time.monotonic()
        with self._leases_lock:
            lease = self._leases.get(caller_id)
            if lease is None:
                return 1
            if lease.denied_until > now:
                return -max(1, int((lease.denied_until - now) * 1000))
            if lease.expires > now and lease.tokens >= cost:
                lease.tokens -= cost
                return 0
            if lease.expires > now:  # used up while fresh: the caller is busy, lease more
                return min(self._lease_max, lease.size * 2)
            return max(1, lease.size // 2)

    def _store_lease(self, caller_id: str, tokens: float, size: int, denied_until: float = 0.0) -> None:
        with self._leases_lock:
            if len(self._leases) > 100_000:
                self._leases.clear()
            self._leases[caller_id] = _Lease(tokens, time.monotonic() + LEASE_TTL_S, size, denied_until)
