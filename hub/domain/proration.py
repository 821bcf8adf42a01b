"""Proration when a subscription changes plan mid-period, exact to the second.

For a period ``[start, end)`` and a change at ``at``, the unused share is
``(end - at) / (end - start)`` counted in whole seconds. The customer is
credited the old plan's price for the unused share and charged the new plan's
price for it; each amount is rounded once (see :mod:`hub.domain.money`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.domain.calendar import seconds_between
from hub.domain.money import divide


@dataclass(frozen=True)
class Proration:
    credit: int  # negative: the unused part of the old plan
    charge: int  # positive: the rest of the period on the new plan
    unused_seconds: int
    period_seconds: int

    @property
    def net(self) -> int:
        return self.credit + self.charge


def share(amount: int, part_seconds: int, whole_seconds: int) -> int:
    return divide(amount * part_seconds, whole_seconds)


def prorate_change(
    old_amount: int, new_amount: int, period_start: datetime, period_end: datetime, at: datetime
) -> Proration:
    """Credit and charge for switching from ``old_amount`` to ``new_amount`` at ``at``."""
    whole = seconds_between(period_start, period_end)
    unused = seconds_between(at, period_end)
    if whole <= 0 or not 0 <= unused <= whole:
        raise ValueError("the change must fall inside the current period")
    return Proration(
        credit=-share(old_amount, unused, whole),
        charge=share(new_amount, unused, whole),
        unused_seconds=unused,
        period_seconds=whole,
    )


def prorate_restart(old_amount: int, period_start: datetime, period_end: datetime, at: datetime) -> int:
    """Credit (negative) for the unused part of a period that ends early at ``at``."""
    whole = seconds_between(period_start, period_end)
    unused = seconds_between(at, period_end)
    if whole <= 0 or not 0 <= unused <= whole:
        raise ValueError("the change must fall inside the current period")
    return -share(old_amount, unused, whole)
