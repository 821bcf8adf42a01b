"""HubSpot's rate limits: a rolling burst window, a search limit, a daily cap.

Counted per principal (a private-app token, or an OAuth app in one portal:
all its access tokens share a budget). Windows use real monotonic time, not
the simulator clock, so freezing data timestamps never freezes the limits.
Requests answered 429 are not counted and change no data.

Every authenticated answer carries ``X-HubSpot-RateLimit-Max``,
``-Remaining`` and ``-Interval-Milliseconds``; private-app answers also carry ``-Daily`` and
``-Daily-Remaining`` (HubSpot leaves those out for OAuth calls).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from connectors.hubspot.sim import errors


@dataclass
class RateLimits:
    enabled: bool = True
    burst: int = 190
    interval_s: float = 10.0
    search: int = 4
    search_interval_s: float = 1.0
    daily: int = 500_000
    retry_after: bool = False  # HubSpot sends no Retry-After; turn on to test a client that would use it
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _windows: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _search: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _days: dict[str, int] = field(default_factory=dict, repr=False)

    def check(self, key: str, *, search: bool, daily_headers: bool) -> dict[str, str]:
        """Count one request, or raise a 429 :class:`errors.ApiError`; returns the headers to send."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(key, deque())
            _trim(window, now - self.interval_s)
            searches = self._search.setdefault(key, deque())
            _trim(searches, now - self.search_interval_s)
            used_today = self._days.get(key, 0)
            if self.enabled:
                if used_today >= self.daily:
                    self._reject(
                        key, "DAILY", "You have reached your daily limit.", window, daily_headers, now
                    )
                if len(window) >= self.burst:
                    self._reject(
                        key,
                        "TEN_SECONDLY_ROLLING",
                        "You have reached your ten_secondly_rolling limit.",
                        window,
                        daily_headers,
                        now,
                    )
                if search and len(searches) >= self.search:
                    self._reject(
                        key, "SECONDLY", "You have reached your secondly limit.", window, daily_headers, now
                    )
            window.append(now)
            if search:
                searches.append(now)
            self._days[key] = used_today + 1
            return self._headers(key, len(window), daily_headers)

    def storm_headers(self, key: str | None, daily_headers: bool) -> dict[str, str]:
        """Headers for an injected 429: the window reported as exhausted."""
        with self._lock:
            headers = self._headers(key or "", self.burst, daily_headers)
        if self.retry_after:
            headers["Retry-After"] = str(max(1, round(self.interval_s)))
        return headers

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
            self._search.clear()
            self._days.clear()

    def _reject(
        self, key: str, policy: str, message: str, window: deque[float], daily_headers: bool, now: float
    ) -> None:
        headers = self._headers(key, self.burst, daily_headers)
        if self.retry_after:
            oldest = window[0] if window else now
            headers["Retry-After"] = str(max(1, round(oldest + self.interval_s - now + 0.5)))
        raise errors.ApiError(429, rate_limit_body(message, policy), headers)

    def _headers(self, key: str, used: int, daily_headers: bool) -> dict[str, str]:
        remaining = max(0, self.burst - used)
        headers = {
            "X-HubSpot-RateLimit-Max": str(self.burst),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.interval_s * 1000)),
        }
        if daily_headers:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily - self._days.get(key, 0)))
        return headers


def rate_limit_body(message: str, policy: str) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": errors.correlation_id(),
        "policyName": policy,
        "groupName": "crm-objects",
    }


def _trim(window: deque[float], horizon: float) -> None:
    while window and window[0] <= horizon:
        window.popleft()
