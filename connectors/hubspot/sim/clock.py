"""The simulator's clock and HubSpot's time formats.

HubSpot keeps times as UTC milliseconds and shows them as ISO 8601 strings
with milliseconds and ``Z`` (``2026-01-15T09:00:00.000Z``). The clock follows
real time unless a test freezes it (then every change made meanwhile carries
the same millisecond) or moves it.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime, timedelta

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIGITS = re.compile(r"^-?\d+$")


class SimClock:
    """Milliseconds since the epoch, real or test-controlled. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen: int | None = None
        self._offset_ms = 0

    def now_ms(self) -> int:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return int(time.time() * 1000) + self._offset_ms

    def freeze(self, at: int | datetime | None = None) -> int:
        """Stop the clock (at ``at``, or now); returns the frozen millisecond."""
        moment = self.now_ms() if at is None else to_ms(at)
        with self._lock:
            self._frozen = moment
        return moment

    def unfreeze(self) -> None:
        """Let the clock run again from where it stands."""
        with self._lock:
            if self._frozen is not None:
                self._offset_ms = self._frozen - int(time.time() * 1000)
                self._frozen = None

    def set(self, at: int | datetime) -> None:
        """Jump to ``at``; a frozen clock stays frozen there, a running one runs on from it."""
        moment = to_ms(at)
        with self._lock:
            if self._frozen is not None:
                self._frozen = moment
            else:
                self._offset_ms = moment - int(time.time() * 1000)

    def advance(self, seconds: float) -> int:
        """Move the clock forward (frozen or not); returns the new now."""
        delta = round(seconds * 1000)
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset_ms += delta
        return self.now_ms()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


def to_ms(value: int | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a timezone")
        return round(value.timestamp() * 1000)
    return int(value)


def iso(ms: int) -> str:
    """HubSpot's ISO form: ``2026-01-15T09:00:00.000Z``."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def parse_time(value: object) -> int | None:
    """Milliseconds from what HubSpot accepts for date/datetime values:
    epoch milliseconds (number or digit string), ISO 8601 date-time, or a
    bare ``YYYY-MM-DD`` (midnight UTC). ``None`` when it is none of those."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _DIGITS.match(text):
        return int(text)
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        return to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ms(moment)


def is_midnight_utc(ms: int) -> bool:
    return ms % 86_400_000 == 0


def time_of_day(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%H:%M:%S.") + f"{ms % 1000:03d}"


def expired_for(now_ms: int, expired_at_ms: int) -> str:
    """HubSpot's wording of how long ago a token expired: ``7 second(s)``, ``5 hour(s)``…"""
    ago = timedelta(milliseconds=max(0, now_ms - expired_at_ms))
    seconds = int(ago.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}(s)"
    return f"{seconds} second(s)"
