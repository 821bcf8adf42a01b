"""Growing delays with jitter and a cap, then the last attempt; the same numbers for rq's Retry."""

from __future__ import annotations

import random
from datetime import timedelta

from config import load_settings
from jobs.retry import RetryPolicy


def test_delays_double_within_the_jitter_up_to_the_cap_then_stop():
    policy = RetryPolicy(max_attempts=6, base=timedelta(seconds=10), cap=timedelta(seconds=60), jitter=0.25)
    rng = random.Random(7)
    for attempt, plain in enumerate([10, 20, 40, 60, 60], start=1):
        delay = policy.delay(attempt, rng)
        assert delay is not None and 0.75 * plain <= delay.total_seconds() <= 1.25 * plain
    assert policy.delay(6) is None  # the sixth attempt was the last


def test_rq_intervals_are_one_per_retry_in_whole_seconds():
    policy = RetryPolicy(max_attempts=4, base=timedelta(seconds=10), jitter=0)
    assert policy.intervals() == [10, 20, 40]
    assert RetryPolicy(max_attempts=1).intervals() == []


def test_the_policy_comes_from_the_settings():
    settings = load_settings(
        {
            "ABOHUB_JOB_MAX_ATTEMPTS": "5",
            "ABOHUB_JOB_RETRY_BASE_SECONDS": "2",
            "ABOHUB_JOB_RETRY_CAP_SECONDS": "30",
        }
    )
    policy = RetryPolicy.from_settings(settings)
    assert (policy.max_attempts, policy.base, policy.cap) == (5, timedelta(seconds=2), timedelta(seconds=30))
    defaults = RetryPolicy.from_settings(load_settings({}))
    assert (defaults.max_attempts, defaults.base, defaults.cap) == (
        8,
        timedelta(seconds=10),
        timedelta(hours=1),
    )
