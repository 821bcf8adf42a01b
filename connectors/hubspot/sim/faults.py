"""Faults injected on request: ``sim.faults.add("http_503", count=3, path=r"/batch/")``.

Kinds:

* ``http_500``, ``http_502``, ``http_503``: that status; 500 and 503 with a
  JSON error body, 502 with an HTML page like a proxy in front would send.
* ``timeout``: wait ``seconds`` before answering; with ``apply=True`` (the
  default) the request then takes effect and is answered normally (late),
  which is what makes a client-side timeout ambiguous; with ``apply=False``
  it is answered 504 and changes nothing.
* ``rate_limit_storm``: 429 with HubSpot's rate-limit body and headers.
* ``missing_scopes``: 403 ``MISSING_SCOPES``, as when someone edits the private app and takes a
  scope away (``scope`` names it, e.g. ``crm.objects.contacts.write``); nothing changes.
* ``malformed``: 200 with a JSON body cut in half; with ``apply=True`` the
  request takes effect first (the client cannot tell), by default it does not.

A fault matches requests by ``method`` and by a regular expression searched
in the path (both optional), skips the first ``skip`` matching requests, then
fires ``count`` times (``None``: until cleared). Faults are tried in the
order they were added; the OAuth token endpoint is matched like any path.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

KINDS = ("http_500", "http_502", "http_503", "timeout", "rate_limit_storm", "malformed", "missing_scopes")
_APPLY_DEFAULT = {"timeout": True}


@dataclass
class Fault:
    kind: str
    count: int | None = 1
    path: str | None = None
    method: str | None = None
    seconds: float = 1.0
    apply: bool = False
    skip: int = 0
    scope: str = "crm.objects.contacts.write"
    fired: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._pattern is None or self._pattern.search(path) is not None

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        kind: str,
        count: int | None = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        seconds: float = 1.0,
        apply: bool | None = None,
        skip: int = 0,
        scope: str = "crm.objects.contacts.write",
    ) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {KINDS}")
        fault = Fault(
            kind,
            count,
            path,
            method,
            seconds,
            _APPLY_DEFAULT.get(kind, False) if apply is None else apply,
            skip,
            scope,
            _pattern=re.compile(path) if path else None,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def take(self, method: str, path: str) -> Fault | None:
        """The fault that fires for this request, if any (and count it)."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.fired += 1
                return fault
            self._faults = [f for f in self._faults if not f.exhausted]
        return None
