"""Dunning: when to retry a failed payment and what happens after the last try.

The first attempt is made when the invoice is issued. If it fails, the
subscription becomes ``past_due`` and the payment is retried ``retry_days``
after that first failure (e.g. days 1, 3, 5 and 7). When the last retry fails
the final action runs: ``cancel`` cancels the subscription and marks the
invoice uncollectible; ``leave_past_due`` leaves both as they are.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def next_retry_at(
    first_failure_at: datetime, failed_attempts: int, retry_days: tuple[int, ...]
) -> datetime | None:
    """When to try again after ``failed_attempts`` failures, or ``None`` when retries are spent."""
    if failed_attempts < 1:
        raise ValueError("there is no retry before a first failure")
    index = failed_attempts - 1
    if index >= len(retry_days):
        return None
    return first_failure_at + timedelta(days=retry_days[index])
