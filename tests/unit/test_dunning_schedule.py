"""Dunning: when a failed payment is retried, counted from the first failure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.domain.dunning import next_retry_at

FIRST_FAILURE = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
SCHEDULE = (1, 3, 5, 7)


@pytest.mark.parametrize(
    ("failed_attempts", "expected"),
    [
        (1, datetime(2026, 1, 16, 9, 30, tzinfo=UTC)),  # day 1 after the first failure
        (2, datetime(2026, 1, 18, 9, 30, tzinfo=UTC)),  # day 3
        (3, datetime(2026, 1, 20, 9, 30, tzinfo=UTC)),  # day 5
        (4, datetime(2026, 1, 22, 9, 30, tzinfo=UTC)),  # day 7
        (5, None),  # the first try and four retries have failed: give up
        (9, None),
    ],
)
def test_the_default_schedule_is_days_1_3_5_7_after_the_first_failure(failed_attempts, expected):
    assert next_retry_at(FIRST_FAILURE, failed_attempts, SCHEDULE) == expected


def test_retries_are_counted_from_the_first_failure_not_from_the_last():
    # Whenever the 2nd failure happened, the 3rd try is on day 5 of the first failure.
    assert next_retry_at(FIRST_FAILURE, 3, SCHEDULE) == datetime(2026, 1, 20, 9, 30, tzinfo=UTC)


def test_a_schedule_across_a_month_end():
    first = datetime(2026, 1, 30, 23, 0, tzinfo=UTC)
    assert next_retry_at(first, 2, (2, 4)) == datetime(2026, 2, 3, 23, 0, tzinfo=UTC)  # 4 days later
    assert next_retry_at(first, 3, (2, 4)) is None


def test_a_single_retry():
    assert next_retry_at(FIRST_FAILURE, 1, (2,)) == datetime(2026, 1, 17, 9, 30, tzinfo=UTC)
    assert next_retry_at(FIRST_FAILURE, 2, (2,)) is None


def test_no_retry_before_a_failure():
    with pytest.raises(ValueError):
        next_retry_at(FIRST_FAILURE, 0, SCHEDULE)
