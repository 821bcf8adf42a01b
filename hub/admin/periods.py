"""The dashboard's period: a month, quarter, year or the 12 months ending with a chosen month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from babel.dates import format_date

from hub.metrics.periods import add_months, month_start


@dataclass(frozen=True)
class ChosenPeriod:
    kind: str
    start: datetime
    end: datetime
    interval: str  # the chart's buckets
    month: str  # the chosen month, "YYYY-MM"

    def label(self, locale: str) -> str:
        last = add_months(self.end, -1)
        if self.kind == "month":
            return format_date(self.start, "LLLL y", locale=locale)
        if self.kind == "quarter":
            return f"Q{(self.start.month - 1) // 3 + 1} {self.start.year}"
        if self.kind == "year":
            return str(self.start.year)
        return (
            f"{format_date(self.start, 'LLL y', locale=locale)} – {format_date(last, 'LLL y', locale=locale)}"
        )


def choose(kind: str, month: str | None, now: datetime) -> ChosenPeriod:
    """The period of ``kind`` that holds ``month`` ("YYYY-MM", default the month of ``now``)."""
    if month:
        year, number = (int(part) for part in month.split("-"))
        chosen = datetime(year, number, 1, tzinfo=UTC)
    else:
        chosen = month_start(now.astimezone(UTC))
    if kind == "month":
        start, end, interval = chosen, add_months(chosen, 1), "week"
    elif kind == "quarter":
        start = chosen.replace(month=(chosen.month - 1) // 3 * 3 + 1)
        end, interval = add_months(start, 3), "month"
    elif kind == "year":
        start = chosen.replace(month=1)
        end, interval = add_months(start, 12), "month"
    else:
        start, end, interval = add_months(chosen, -11), add_months(chosen, 1), "month"
    return ChosenPeriod(kind, start, end, interval, f"{chosen:%Y-%m}")
