"""The published retry schedule, its jitter, and Retry-After."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_server.events.webhooks.retry_schedule import (
    DEFAULT_SCHEDULE,
    RetrySchedule,
    parse_duration,
    parse_retry_after,
)


def test_default_schedule_is_the_published_one() -> None:
    schedule = RetrySchedule.parse(DEFAULT_SCHEDULE)
    assert schedule.delays == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    assert schedule.attempts == 8
    assert sum(schedule.delays) / 3600 == pytest.approx(27.5, abs=0.1)


@pytest.mark.parametrize(("text", "seconds"), [("250ms", 0.25), ("5s", 5), ("5m", 300), ("2h", 7200), ("1d", 86400),
                                               ("7", 7)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@given(attempts_made=st.integers(min_value=1, max_value=7))
def test_jittered_delays_stay_within_bounds(attempts_made: int) -> None:
    schedule = RetrySchedule.parse(DEFAULT_SCHEDULE, jitter=0.2)
    delay = schedule.delay_after_failure(attempts_made)
    base = schedule.delays[attempts_made]
    assert delay is not None and 0.8 * base <= delay <= 1.2 * base


def test_after_the_last_attempt_the_delivery_is_dead() -> None:
    schedule = RetrySchedule.parse("0,1s,2s")
    assert schedule.delay_after_failure(2) is not None
    assert schedule.delay_after_failure(3) is None


def test_retry_after_postpones_but_is_capped() -> None:
    schedule = RetrySchedule.parse("0,1s,2s", jitter=0, retry_after_max_s=60)
    assert schedule.delay_after_failure(1, retry_after_s=30) == 30
    assert schedule.delay_after_failure(1, retry_after_s=0.5) == 1  # never sooner than the schedule
    assert schedule.delay_after_failure(1, retry_after_s=10_000) == 60


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == pytest.approx(90)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0
