"""Settings of the webhook dispatcher: flags of `ledger-webhooks`, or LEDGER_WEBHOOKS_* variables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ledger_server.events.webhooks.retry_schedule import DEFAULT_SCHEDULE, RetrySchedule, parse_duration
from ledger_server.events.webhooks.url_policy import UrlPolicy

RETENTION_FLOOR_S = 30 * 86400.0  # the database refuses to delete anything younger (migration 0002)


@dataclass(frozen=True)
class DispatcherConfig:
    schedule: RetrySchedule = field(default_factory=lambda: RetrySchedule.parse(DEFAULT_SCHEDULE))
    policy: UrlPolicy = field(default_factory=UrlPolicy)
    concurrency: int = 16                  # endpoints delivered to at once (one request each)
    request_timeout_s: float = 15.0        # the whole attempt: connect, send, answer
    response_bytes_max: int = 64 * 1024    # of each answer; the rest is never read
    disable_after_s: float = 5 * 86400.0   # an endpoint failing this long is disabled
    poll_interval_s: float = 1.0           # the slow fallback when no NOTIFY arrives
    deliveries_per_lease: int = 100        # then the endpoint goes back to the queue (fairness)
    retention_s: float = 90 * 86400.0      # final deliveries and attempts are purged after this
    lease_s: float = 0.0                   # 0: twice the request timeout plus 5 s

    def __post_init__(self) -> None:
        assert 1 <= self.concurrency <= 256, "concurrency 1..256"
        assert 0 < self.request_timeout_s <= 120 and 0 < self.poll_interval_s <= 60
        assert self.disable_after_s > 0 and 1 <= self.deliveries_per_lease <= 10_000
        assert self.retention_s >= RETENTION_FLOOR_S, "retention must be at least 30 days"
        assert self.lease_s == 0 or self.lease_s > self.request_timeout_s, "a lease must outlive an attempt"

    @property
    def effective_lease_s(self) -> float:
        return self.lease_s or 2 * self.request_timeout_s + 5


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """The dispatcher's flags, each defaulting to its LEDGER_WEBHOOKS_* variable."""
    e = (env if env is not None else os.environ).get
    add = parser.add_argument
    add("--retry-schedule", default=e("LEDGER_WEBHOOKS_SCHEDULE", DEFAULT_SCHEDULE),
        help="waits before each attempt, e.g. 0,5s,5m,30m,2h,5h,10h,10h (env LEDGER_WEBHOOKS_SCHEDULE)")
    add("--retry-jitter", type=float, default=float(e("LEDGER_WEBHOOKS_JITTER", "0.2")),
        help="each wait is scaled by a random factor in [1-j, 1+j] (env LEDGER_WEBHOOKS_JITTER)")
    add("--retry-after-max", default=e("LEDGER_WEBHOOKS_RETRY_AFTER_MAX", "6h"),
        help="longest Retry-After honoured (env LEDGER_WEBHOOKS_RETRY_AFTER_MAX)")
    add("--concurrency", type=int, default=int(e("LEDGER_WEBHOOKS_CONCURRENCY", "16")),
        help="endpoints delivered to at once (env LEDGER_WEBHOOKS_CONCURRENCY)")
    add("--request-timeout", default=e("LEDGER_WEBHOOKS_TIMEOUT", "15s"),
        help="per attempt (env LEDGER_WEBHOOKS_TIMEOUT)")
    add("--disable-after", default=e("LEDGER_WEBHOOKS_DISABLE_AFTER", "5d"),
        help="disable an endpoint failing this long (env LEDGER_WEBHOOKS_DISABLE_AFTER)")
    add("--poll-interval", default=e("LEDGER_WEBHOOKS_POLL", "1s"),
        help="fallback poll when no notification arrives (env LEDGER_WEBHOOKS_POLL)")
    add("--retention", default=e("LEDGER_WEBHOOKS_RETENTION", "90d"),
        help="keep final deliveries and attempts this long, at least 30d (env LEDGER_WEBHOOKS_RETENTION)")
    add("--lease", default=e("LEDGER_WEBHOOKS_LEASE", "0"),
        help="how long an endpoint stays with a dispatcher that stopped answering; 0 = 2 x timeout + 5 s")
    add("--allow-loopback", action="store_true", default=_flag(e("LEDGER_WEBHOOKS_ALLOW_LOOPBACK")),
        help="development only: allow receivers on loopback addresses (env LEDGER_WEBHOOKS_ALLOW_LOOPBACK)")
    add("--allow-private", action="store_true", default=_flag(e("LEDGER_WEBHOOKS_ALLOW_PRIVATE")),
        help="allow receivers on private networks (env LEDGER_WEBHOOKS_ALLOW_PRIVATE)")
    add("--allow-http", action="store_true", default=_flag(e("LEDGER_WEBHOOKS_ALLOW_HTTP")),
        help="allow plain http:// receivers (env LEDGER_WEBHOOKS_ALLOW_HTTP)")


def from_arguments(args: argparse.Namespace) -> DispatcherConfig:
    return DispatcherConfig(
        schedule=RetrySchedule.parse(args.retry_schedule, args.retry_jitter, parse_duration(args.retry_after_max)),
        policy=UrlPolicy(allow_loopback=args.allow_loopback, allow_private=args.allow_private,
                         allow_http=args.allow_http),
        concurrency=args.concurrency,
        request_timeout_s=parse_duration(args.request_timeout),
        disable_after_s=parse_duration(args.disable_after),
        poll_interval_s=parse_duration(args.poll_interval),
        retention_s=parse_duration(args.retention),
        lease_s=parse_duration(args.lease),
    )


def from_env(env: Mapping[str, str] | None = None) -> DispatcherConfig:
    """The in-process dispatcher of `ledger-server --webhooks-in-process` reads the same variables."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser, env)
    return from_arguments(parser.parse_args([]))


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")
