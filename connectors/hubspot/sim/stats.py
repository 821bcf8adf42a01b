"""What the simulator saw: requests per (method, path template, status), and a request log.

The log never holds tokens: the Authorization header is not kept, and OAuth
form fields and query parameters that carry secrets are replaced by ``***``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

SECRET_FIELDS = frozenset({"client_secret", "refresh_token", "code", "access_token", "hapikey", "token"})


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    template: str
    query: dict[str, str]
    status: int
    principal: str | None  # "private_app" / "oauth" / None
    fault: str | None
    body: Any
    duration_ms: float


def scrub(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in SECRET_FIELDS else v) for k, v in values.items()}


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.log: list[LoggedRequest] = []

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests[(entry.method, entry.template, entry.status)] += 1
            self.log.append(entry)

    def count(self, method: str | None = None, template: str | None = None, status: int | None = None) -> int:
        """How many requests matched (each argument optional)."""
        with self._lock:
            return sum(
                n
                for (m, t, s), n in self.requests.items()
                if (method is None or m == method)
                and (template is None or t == template)
                and (status is None or s == status)
            )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()
