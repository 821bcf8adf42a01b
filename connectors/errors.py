"""What can go wrong talking to a vendor, and what to do about it.

Every connector error is a :class:`ConnectorError`; its class says what the caller should do:

=======================  ===============================================================
``RetriableError``       try again later (timeouts, connection errors, 5xx)
``RateLimited``          try again after ``retry_after`` seconds (429); a RetriableError
``AuthError``            the credentials are wrong (401/403); ``expired`` → refresh them
``NotFound``             the record is not there (404/410)
``FatalError``           the request is wrong (other 4xx); ``field_errors`` says why
``MalformedResponse``    the vendor answered 2xx with a body that is not the JSON expected
=======================  ===============================================================

A status code becomes an error class in one place, :func:`classify`, driven by the tables
below. Errors carry the :class:`Exchange` (request and response) with secrets scrubbed by a
:class:`Scrubber`, so it can be logged and stored in dead letters as it is.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

MASK = "***"
MAX_BODY_CHARS = 16_000


# --- the errors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request and its response (if any), scrubbed of secrets, bodies truncated."""

    method: str
    url: str
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str | None = None
    status: int | None = None  # None: no response (timeout, connection error)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None

    def header(self, name: str) -> str | None:
        """A response header, by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.response_headers.items() if k.lower() == wanted), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConnectorError(Exception):
    """Root of every connector error: a readable message and, when there was one, the exchange."""

    def __init__(self, message: str, exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exchange = exchange

    @property
    def status(self) -> int | None:
        return self.exchange.status if self.exchange else None

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:  # picklable with every attribute (rq, multiprocessing)
        return (type(self), (self.message,), self.__dict__)


class RetriableError(ConnectorError):
    """A transient fault: the same request may succeed later."""

    def __init__(self, message: str, exchange: Exchange | None = None, *, retry_after: float | None = None):
        super().__init__(message, exchange)
        self.retry_after = retry_after  # seconds, when the vendor said (Retry-After)


class RateLimited(RetriableError):
    """The vendor (429) or our own token bucket says: not now, wait ``retry_after`` seconds."""


class AuthError(ConnectorError):
    """The credentials were refused. ``expired``: a token expired and may be refreshed."""

    def __init__(self, message: str, exchange: Exchange | None = None, *, expired: bool = False):
        super().__init__(message, exchange)
        self.expired = expired


class NotFound(ConnectorError):
    """The record (or endpoint) does not exist."""


class FatalError(ConnectorError):
    """The vendor refused the request as it is (validation, conflict…): retrying will not help."""

    def __init__(
        self,
        message: str,
        exchange: Exchange | None = None,
        *,
        field_errors: dict[str, list[str]] | None = None,
    ):
        super().__init__(message, exchange)
        self.field_errors = field_errors or {}  # field name ("" when the vendor names none) → messages


class MalformedResponse(ConnectorError):
    """A 2xx answer whose body is not the JSON expected. Not retried here: the write may have happened."""


# --- classification: the one place a status becomes an error class --------------------------

STATUS_ERRORS: dict[int, type[ConnectorError]] = {
    400: FatalError,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    408: RetriableError,  # request timeout
    409: FatalError,
    410: NotFound,
    422: FatalError,
    425: RetriableError,  # too early
    429: RateLimited,
    501: FatalError,  # not implemented: will not change by retrying
    505: FatalError,
}
STATUS_CLASS_ERRORS: dict[int, type[ConnectorError]] = {4: FatalError, 5: RetriableError}

# (status, text in the lowercased body) → class; checked before the tables above.
BODY_RULES: list[tuple[int, str, type[ConnectorError]]] = [
    (403, "rate limit", RateLimited),  # some vendors say 403 when they mean 429
    (400, "invalid_grant", AuthError),  # OAuth token endpoint: the refresh token is no longer valid
]
# Text in a 401 body or WWW-Authenticate header meaning "the token expired: refresh it".
EXPIRED_TOKEN_MARKERS = ("expired", "invalid_token")


def classify(status: int, body: str = "") -> type[ConnectorError] | None:
    """The error class for a response status (and body); None when it is not an error."""
    if status < 400:
        return None
    lowered = body.lower()
    for rule_status, text, error_class in BODY_RULES:
        if status == rule_status and text in lowered:
            return error_class
    return STATUS_ERRORS.get(status) or STATUS_CLASS_ERRORS.get(status // 100, FatalError)


def error_from_exchange(exchange: Exchange, reason: str = "") -> ConnectorError | None:
    """The error an (already scrubbed) exchange amounts to, or None for a success."""
    assert exchange.status is not None
    body = exchange.response_body or ""
    error_class = classify(exchange.status, body)
    if error_class is None:
        return None
    parsed = _json_or_none(body)
    vendor = (_vendor_message(parsed) or body)[:500].strip()
    message = f"{exchange.method} {_without_query(exchange.url)} -> {exchange.status} {reason}".rstrip()
    message += f": {vendor}" if vendor else ""
    if issubclass(error_class, RetriableError):
        retry_after = parse_retry_after(exchange.header("Retry-After"), exchange.header("Date"))
        if retry_after is not None:
            message += f" (retry after {retry_after:g} s)"
        return error_class(message, exchange, retry_after=retry_after)
    if issubclass(error_class, AuthError):
        hint = (body + " " + (exchange.header("WWW-Authenticate") or "")).lower()
        expired = exchange.status == 401 and any(m in hint for m in EXPIRED_TOKEN_MARKERS)
        return AuthError(message, exchange, expired=expired)
    if issubclass(error_class, FatalError):
        field_errors = _field_errors(parsed)
        details = "; ".join(f"{k or 'request'}: {', '.join(v)}" for k, v in field_errors.items())
        if details:
            message += f" ({details})"
        return FatalError(message, exchange, field_errors=field_errors)
    return error_class(message, exchange)


def parse_retry_after(
    value: str | None, date: str | None = None, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date.

    An HTTP-date is measured against the response's ``Date`` header when there is one (the
    vendor's own clock), else against ``now`` (default: this machine's clock).
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(date) if date else None
    reference = reference or now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _vendor_message(body: Any) -> str | None:
    """The human message in the common error body shapes (HubSpot, Stripe, OAuth, RFC 7807, Xero)."""
    if not isinstance(body, dict):
        return None
    nested = body.get("error")
    if isinstance(nested, dict):
        return _vendor_message(nested)
    for key in ("message", "Message", "error_description", "detail", "title", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return body[key]
    return None


def _field_errors(body: Any) -> dict[str, list[str]]:
    """Field → messages from the common shapes: ``{"errors": {field: [msg]}}``, ``{"errors": [{...}]}``,
    Stripe's ``{"error": {"param": field, "message": msg}}``, HubSpot's ``context.propertyName``."""
    if not isinstance(body, dict):
        return {}
    found: dict[str, list[str]] = {}
    errors = body.get("errors") or body.get("fieldErrors") or body.get("validation_errors")
    if isinstance(body.get("error"), dict) and body["error"].get("param"):
        errors = [body["error"]]
    if isinstance(errors, dict):
        for name, messages in errors.items():
            found[str(name)] = [str(m) for m in (messages if isinstance(messages, list) else [messages])]
    elif isinstance(errors, list):
        for item in errors:
            if not isinstance(item, dict):
                found.setdefault("", []).append(str(item))
                continue
            message = str(item.get("message") or item.get("msg") or item.get("detail") or item)
            for name in _error_field_names(item):
                found.setdefault(name, []).append(message)
    return found


def _error_field_names(item: dict[str, Any]) -> list[str]:
    for key in ("field", "name", "param", "path", "property"):
        if item.get(key):
            value = item[key]
            return [".".join(map(str, value)) if isinstance(value, list) else str(value)]
    context = item.get("context")
    if isinstance(context, dict) and isinstance(context.get("propertyName"), list):
        return [str(n) for n in context["propertyName"]] or [""]
    source = item.get("source")
    if isinstance(source, dict) and source.get("pointer"):
        return [str(source["pointer"]).lstrip("/")]
    return [""]


def _without_query(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


# --- scrubbing secrets --------------------------------------------------------------------------

SECRET_NAME = re.compile(
    r"token|secret|passw|pwd|api[-_]?key|apikey|private[-_]?key|access[-_]?key|authorization"
    r"|cookie|session|signature|credential",
    re.IGNORECASE,
)
_CREDENTIAL_IN_TEXT = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Scrubber:
    """Replaces secrets with ``***``: values under secret-looking names (headers, JSON fields,
    query and form fields, URL passwords), credentials after ``Bearer``/``Basic``, and every
    occurrence of a value registered with :meth:`add` (also URL-encoded)."""

    def __init__(self, secrets: tuple[str, ...] | list[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *values: str | None) -> None:
        """Register known secret values; empty ones are ignored."""
        new = {form for v in values if v for form in (v, quote(v, safe=""), quote_plus(v))}
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets |= new
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))

    def text(self, value: str) -> str:
        value = _CREDENTIAL_IN_TEXT.sub(lambda m: f"{m.group(1)} {MASK}", value)
        pattern = self._pattern
        return pattern.sub(MASK, value) if pattern else value

    def headers(self, headers: Any) -> dict[str, str]:
        return {str(k): MASK if is_secret_name(str(k)) else self.text(str(v)) for k, v in headers.items()}

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password:
            netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
        return self.text(urlunsplit(parts._replace(netloc=netloc, query=self._form(parts.query))))

    def json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: MASK if is_secret_name(str(k)) else self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        return value

    def body(self, body: bytes | str | None, limit: int = MAX_BODY_CHARS) -> str | None:
        """A request or response body as scrubbed text (JSON, form or plain), then truncated."""
        if body is None or body in (b"", ""):
            return None
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
        parsed = _json_or_none(text)
        if isinstance(parsed, dict | list):
            text = json.dumps(self.json(parsed), ensure_ascii=False)
        elif "=" in text and " " not in text.strip() and "\n" not in text.strip():
            text = self._form(text)
        text = self.text(text)
        if len(text) > limit:
            text = f"{text[:limit]}… [{len(text) - limit} more characters]"
        return text

    def _form(self, query: str) -> str:
        """``a=1&password=x`` → ``a=1&password=***`` (the rest left exactly as it was)."""
        if not query:
            return query
        pairs = []
        for pair in query.split("&"):
            name, sep, _ = pair.partition("=")
            pairs.append(f"{name}={MASK}" if sep and is_secret_name(unquote_plus(name)) else pair)
        return "&".join(pairs)

    def exchange(
        self,
        method: str,
        url: str,
        request_headers: Any,
        request_body: bytes | str | None,
        status: int | None = None,
        response_headers: Any = None,
        response_body: bytes | str | None = None,
    ) -> Exchange:
        return Exchange(
            method=method,
            url=self.url(url),
            request_headers=self.headers(request_headers or {}),
            request_body=self.body(request_body),
            status=status,
            response_headers=self.headers(response_headers or {}),
            response_body=self.body(response_body),
        )
