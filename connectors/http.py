"""The one HTTP client every connector uses: requests + tenacity, with the rules written once.

* Timeouts are always set (connect and read; :class:`HttpPolicy` has the defaults).
* The connector's :class:`~connectors.ratelimit.TokenBucket` is acquired before every attempt;
  a 429 (or 503) with Retry-After pauses that bucket for every worker sharing it.
* Failures become :mod:`connectors.errors` classes. Timeouts, connection errors, 5xx and 429
  are retried with exponential backoff and full jitter, honouring Retry-After, within a cap on
  attempts and on total time; then the last error is raised with its exchange. Auth, not-found
  and other 4xx errors are raised at once, except that an expired-token 401 makes the auth hook
  ``refresh()`` once and the request go again.
* Secrets never leave: exchanges, error messages and log lines go through a
  :class:`~connectors.errors.Scrubber`.
* A write whose answer timed out was sent: the vendor may still apply it, later than its retry
  and perhaps after a newer write. :meth:`HttpClient.unanswered_writes` tells a connector which of
  its writes that happened to, so that the sync can hold the record's next write back a while.

Usage::

    client = HttpClient("https://api.example.com", auth=BearerToken(token),
                        bucket=make_bucket("example:conn-1", 10, 10, redis_url))
    contact = client.get_json("/contacts/42")
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from connectors.errors import (
    AuthError,
    ConnectorError,
    Exchange,
    FatalError,
    MalformedResponse,
    RateLimited,
    RetriableError,
    Scrubber,
    error_from_exchange,
    is_secret_name,
)
from connectors.ratelimit import TokenBucket

log = logging.getLogger(__name__)

_QUERY_IN_TEXT = re.compile(r"\?[^\s()'\"]*")  # query strings in requests' exception messages


class Auth(Protocol):
    """Gives the headers that authenticate a request; may renew them once they expire."""

    def headers(self) -> Mapping[str, str]: ...

    def refresh(self) -> bool:
        """Renew the credentials after an expired-token 401; False when this auth cannot."""
        ...


@dataclass
class BearerToken:
    """A fixed bearer token (a private-app token, an API key sent as a bearer)."""

    token: str

    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def refresh(self) -> bool:
        return False


@dataclass(frozen=True)
class HttpPolicy:
    """How patient a connector is with its vendor."""

    attempts: int = 5  # per request, the first one included
    max_total_seconds: float = 30.0  # all attempts and waits of one request; longer → job-level retry
    backoff_base: float = 0.5  # the first retry waits up to this (full jitter), doubling each time
    backoff_max: float = 10.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


class HttpClient:
    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: Auth | None = None,
        bucket: TokenBucket | None = None,
        policy: HttpPolicy | None = None,
        secrets: tuple[str, ...] | list[str] = (),
        name: str = "http",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.bucket = bucket
        self.policy = policy or HttpPolicy()
        self.name = name  # for log lines, e.g. "hubspot:conn-12"
        self.scrubber = Scrubber(secrets)
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self._backoff = wait_random_exponential(
            multiplier=self.policy.backoff_base, max=self.policy.backoff_max
        )
        self._watching = threading.local()  # this thread's unanswered_writes() list, while it watches

    @contextmanager
    def unanswered_writes(self) -> Iterator[list[str]]:
        """Collect, for the block (in this thread), each write (not GET) sent whose answer did not come
        within the read timeout, as ``"METHOD url"``: it reached the vendor, who may yet apply it."""
        outer = getattr(self._watching, "seen", None)
        seen: list[str] = []
        self._watching.seen = seen
        try:
            yield seen
        finally:
            self._watching.seen = outer
            if outer is not None:
                outer.extend(seen)

    def add_secret(self, *values: str | None) -> None:
        """Values to replace with ``***`` wherever they appear (tokens, keys, client secrets)."""
        self.scrubber.add(*values)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> requests.Response:
        """Send with retries; return a response below 400 or raise a ``ConnectorError``."""
        url = self._url(path)
        deadline = time.monotonic() + self.policy.max_total_seconds
        retrying = Retrying(
            retry=retry_if_exception_type(RetriableError),
            stop=stop_after_attempt(self.policy.attempts) | stop_before_delay(self.policy.max_total_seconds),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        send = {"params": params, "json": json, "data": data, "headers": headers, "timeout": timeout}
        refreshed = False
        for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                try:
                    return self._send(method, url, send, number, deadline)
                except AuthError as error:
                    if refreshed or not error.expired or self.auth is None:
                        raise
                    refreshed = True  # once per request, whatever refresh() says
                    if not self.auth.refresh():
                        raise
                return self._send(method, url, send, number, deadline)
        raise AssertionError("unreachable: tenacity returns or raises")

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self._json(self.request("GET", path, **kwargs))

    def post_json(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self._json(self.request("POST", path, json=json, **kwargs))

    def put_json(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self._json(self.request("PUT", path, json=json, **kwargs))

    def patch_json(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self._json(self.request("PATCH", path, json=json, **kwargs))

    def delete_json(self, path: str, **kwargs: Any) -> Any:
        return self._json(self.request("DELETE", path, **kwargs))

    # --- one attempt --------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, send: dict[str, Any], attempt: int, deadline: float
    ) -> requests.Response:
        waited = self.bucket.acquire(max_wait=max(0.0, deadline - time.monotonic())) if self.bucket else 0.0
        headers = {**(self.auth.headers() if self.auth else {}), **(send["headers"] or {})}
        request = requests.Request(
            method, url, headers=headers, params=send["params"], json=send["json"], data=send["data"]
        )
        prepared = self.session.prepare_request(request)
        self._remember_secret_headers(prepared.headers)
        settings = self.session.merge_environment_settings(prepared.url, {}, None, None, None)
        timeout = send["timeout"] or (self.policy.connect_timeout, self.policy.read_timeout)
        started = time.monotonic()
        response: requests.Response | None = None
        failure: ConnectorError | None = None
        try:
            response = self.session.send(prepared, timeout=timeout, allow_redirects=True, **settings)
        except requests.RequestException as exc:
            failure = self._transport_error(method, prepared, exc, timeout)
        self._log(method, url, response, started, attempt, waited)
        if failure is not None:
            raise failure
        assert response is not None
        if response.status_code < 400:
            return response
        exchange = self._exchange(prepared, response)
        error = error_from_exchange(exchange, response.reason or "")
        assert error is not None
        if isinstance(error, RetriableError) and self.bucket:
            # A vendor that says "wait" says it to every worker: pause the shared bucket.
            pause = error.retry_after
            if pause is None and isinstance(error, RateLimited):
                pause = self.policy.backoff_base
            if pause is not None:
                self.bucket.pause(pause)
        raise error

    def _transport_error(
        self, method: str, prepared: requests.PreparedRequest, exc: requests.RequestException, timeout: Any
    ) -> ConnectorError:
        exchange = self.scrubber.exchange(method, prepared.url or "", prepared.headers, prepared.body)
        where = f"{method} {exchange.url.split('?')[0]}"
        detail = self.scrubber.text(_QUERY_IN_TEXT.sub("", f"{type(exc).__name__}: {exc}"))
        if isinstance(exc, requests.ReadTimeout) and method != "GET":
            watching = getattr(self._watching, "seen", None)
            if watching is not None:
                watching.append(where)
        if isinstance(exc, requests.Timeout):
            return RetriableError(f"{where} timed out (timeout {timeout}): {detail}", exchange)
        transient = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
        if isinstance(exc, transient):
            return RetriableError(f"{where} failed: {detail}", exchange)
        return FatalError(f"{where} failed: {detail}", exchange)

    def _json(self, response: requests.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            pass
        exchange = self._exchange(response.request, response)
        snippet = (exchange.response_body or "(empty)")[:100]
        where = f"{exchange.method} {exchange.url.split('?')[0]} -> {response.status_code}"
        raise MalformedResponse(f"{where}: the body is not JSON: {snippet!r}", exchange)

    # --- helpers ------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if not path.startswith(("http://", "https://")):
            return f"{self.base_url}/{path.lstrip('/')}"
        if urlsplit(path)[:2] != urlsplit(self.base_url)[:2]:  # never send our credentials elsewhere
            raise ValueError(f"{self.name}: refusing a URL outside {self.base_url}")
        return path

    def _exchange(self, prepared: requests.PreparedRequest, response: requests.Response) -> Exchange:
        return self.scrubber.exchange(
            prepared.method or "",
            prepared.url or "",
            prepared.headers,
            prepared.body,
            response.status_code,
            response.headers,
            response.content,
        )

    def _remember_secret_headers(self, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            if is_secret_name(name):
                credential = value.split(" ", 1)[-1]  # "Bearer abc…" → also "abc…"
                self.scrubber.add(*(v for v in (value, credential) if len(v) >= 8))

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return error.retry_after
        return self._backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        log.debug(
            "%s: retrying in %.2f s after attempt %d: %s", self.name, sleep, state.attempt_number, error
        )

    def _log(
        self,
        method: str,
        url: str,
        response: requests.Response | None,
        started: float,
        attempt: int,
        waited: float,
    ) -> None:
        path = self.scrubber.text(urlsplit(url).path)
        status: int | str = response.status_code if response is not None else "no response"
        duration_ms = (time.monotonic() - started) * 1000
        log.debug(
            "%s %s %s -> %s in %.0f ms (attempt %d, rate-limit wait %.0f ms)",
            self.name,
            method,
            path,
            status,
            duration_ms,
            attempt,
            waited * 1000,
            extra={
                "connector": self.name,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_ms, 1),
                "attempt": attempt,
                "rate_limit_wait_ms": round(waited * 1000, 1),
            },
        )
