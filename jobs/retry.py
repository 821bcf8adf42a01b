"""How a failed job is retried: growing delays with jitter, a cap, a last attempt.

Attempt ``n`` (1-based) that fails waits ``base × 2^(n-1)``, capped at ``cap``,
times a random factor in ``[1 - jitter, 1 + jitter]`` (so many jobs failing
together do not come back together), before attempt ``n + 1``. After attempt
``max_attempts`` the job is failed for good. With the defaults (10 s base,
1 h cap, 8 attempts) the waits are about 10 s, 20 s, 40 s, 80 s, 160 s, 320 s
and 640 s: roughly 21 minutes from the first failure to the last attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from config import Settings


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)
    jitter: float = 0.25

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.job_max_attempts,
            base=timedelta(seconds=settings.job_retry_base_seconds),
            cap=timedelta(seconds=settings.job_retry_cap_seconds),
        )

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta | None:
        """The wait after failed attempt ``attempt``; None when that was the last one."""
        if attempt >= self.max_attempts:
            return None
        plain = min(self.base * 2 ** (attempt - 1), self.cap)
        factor = 1 + self.jitter * (2 * (rng or random).random() - 1)
        return plain * factor

    def intervals(self, rng: random.Random | None = None) -> list[int]:
        """Whole-second waits between the attempts, for rq's ``Retry(interval=[…])``."""
        return [
            max(1, round(wait.total_seconds()))
            for attempt in range(1, self.max_attempts)
            if (wait := self.delay(attempt, rng)) is not None
        ]
