"""What the sync and async clients share: settings, deadlines, retry planning, the scale cache.

The two clients differ only in how they wait (time.sleep vs asyncio.sleep) and call (blocking vs
awaited); every decision is made here, once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from ledger_client.channel import ChannelSettings
from ledger_client.errors import LedgerError
from ledger_client.retry import RetryNotice, RetryPolicy

log = logging.getLogger("ledger_client")

DEFAULT_TIMEOUT_S = 15.0  # a call's overall deadline, retries included, when the caller sets none
TIMEOUT_MAX_S = 3600.0
SCALE_CACHE_MAX = 4096  # asset scales are immutable; the bound only guards against unbounded growth

RetryObserver = Callable[[RetryNotice], None]


class CallCore:
    """Per-client state and the retry loop's decisions."""

    def __init__(
        self,
        settings: ChannelSettings,
        retry: RetryPolicy,
        timeout: float,
        on_retry: RetryObserver | None,
        asset_scales: Mapping[str, int] | None = None,
    ) -> None:
        check_timeout(timeout)
        self.settings = settings
        self.retry = retry
        self.timeout = timeout
        self.on_retry = on_retry
        self.metadata = settings.call_metadata()
        # Known scales spare the GetAsset lookup (and its `accounts:read` scope) for major-unit amounts.
        self.scales: dict[str, int] = dict(asset_scales or {})
        self._random = random.Random()

    def deadline(self, timeout: float | None) -> float:
        """The monotonic instant by which a logical call (all its attempts) must be done."""
        budget = self.timeout if timeout is None else timeout
        check_timeout(budget)
        return time.monotonic() + budget

    def attempt_timeout(self, deadline: float) -> float:
        return max(0.001, min(deadline - time.monotonic(), self.retry.attempt_timeout_s))

    def delay_before_retry(
        self, method: str, attempt: int, error: LedgerError, deadline: float
    ) -> float | None:
        """Seconds to sleep before the next attempt, or None to raise `error` now."""
        delay = self.retry.delay_before_retry(
            attempt=attempt, code=error.code, server_delay_s=error.retry_delay_s,
            remaining_s=deadline - time.monotonic(), draw=self._random.random(),
        )
        if delay is None:
            return None
        notice = RetryNotice(method, attempt, error.request_id, error.code, error.reason, delay)
        log.info("retrying %s (attempt %d failed: %s) in %.3fs, request_id=%s",
                 method, attempt, error, delay, error.request_id)
        if self.on_retry is not None:
            self.on_retry(notice)
        return delay

    def check_size(self, request: Any) -> None:
        """Refuse a request gRPC would refuse locally (RESOURCE_EXHAUSTED), which no retry can fix."""
        size: int = request.ByteSize()
        limit = self.settings.max_send_message_bytes
        if size > limit:
            raise ValueError(f"the request is {size} bytes, over max_send_message_bytes={limit}: split it")

    def remember_scale(self, code: str, scale: int) -> None:
        if len(self.scales) >= SCALE_CACHE_MAX:
            self.scales.clear()
        self.scales[code] = scale


def check_timeout(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= TIMEOUT_MAX_S:
        raise ValueError(f"timeout must be seconds in (0, {TIMEOUT_MAX_S:g}], got {value!r}")


def request_id_of(request: Any) -> str | None:
    """The request id a mutating request carries (None for reads)."""
    descriptor = request.DESCRIPTOR
    if "request_id" in descriptor.fields_by_name and descriptor.name != "GetTransferRequest":
        value: str = request.request_id
        return value
    return None
