"""The HTTP client against a real HTTP server on 127.0.0.1 that answers from a script."""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import pytest
import redis
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connectors.errors import (
    AuthError,
    ConnectorError,
    Exchange,
    FatalError,
    MalformedResponse,
    NotFound,
    RateLimited,
    RetriableError,
    Scrubber,
    classify,
    error_from_exchange,
    parse_retry_after,
)
from connectors.http import BearerToken, HttpClient, HttpPolicy
from connectors.ratelimit import LocalBackend, RedisBackend, TokenBucket

REDIS_URL = os.environ.get("ABOHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FAST = HttpPolicy(attempts=5, max_total_seconds=5, backoff_base=0.01, backoff_max=0.05, read_timeout=2)


# --- a scripted vendor ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict or list → JSON; str or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Answers each path from its list of replies, in order; the last reply repeats."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply | Callable[[Request], Reply]]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def on(self, path: str, *replies: Reply | Callable[[Request], Reply]) -> None:
        self.scripts[path] = list(replies)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    @Request.application  # type: ignore[arg-type]
    def _app(self, request: Request) -> Response:
        with self._lock:
            self.seen.append(
                Seen(
                    time.monotonic(),
                    request.method,
                    request.path,
                    request.query_string.decode(),
                    dict(request.headers),
                    request.get_data(),
                )
            )
            script = self.scripts.get(request.path) or [Reply(404, {"message": "nothing scripted"})]
            reply = script.pop(0) if len(script) > 1 else script[0]
        if callable(reply):
            reply = reply(request)
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body
        if isinstance(body, dict | list):
            body = json.dumps(body)
            reply.headers.setdefault("Content-Type", "application/json")
        return Response(body or b"", status=reply.status, headers=reply.headers)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.WARNING)
    with ScriptedServer() as running:
        yield running
    werkzeug_log.setLevel(level)


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[HttpClient]:
    with HttpClient(server.url, policy=FAST, name="test") as http:
        yield http


# --- classification, as data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, "", None),
        (204, "", None),
        (304, "", None),
        (400, '{"message": "bad"}', FatalError),
        (400, '{"error": "invalid_grant"}', AuthError),
        (401, "", AuthError),
        (403, "", AuthError),
        (403, "API rate limit exceeded", RateLimited),
        (404, "", NotFound),
        (408, "", RetriableError),
        (409, "", FatalError),
        (410, "", NotFound),
        (418, "", FatalError),
        (422, "", FatalError),
        (429, "", RateLimited),
        (500, "", RetriableError),
        (501, "", FatalError),
        (502, "", RetriableError),
        (503, "", RetriableError),
        (504, "", RetriableError),
        (599, "", RetriableError),
    ],
)
def test_classification_table(status: int, body: str, expected: type[ConnectorError] | None) -> None:
    assert classify(status, body) is expected


def test_rate_limited_is_retriable_and_the_rest_are_not() -> None:
    assert issubclass(RateLimited, RetriableError)
    for fatal in (AuthError, NotFound, FatalError, MalformedResponse):
        assert not issubclass(fatal, RetriableError)


def _exchange(status: int, body: Any, **headers: str) -> Exchange:
    text = json.dumps(body) if isinstance(body, dict) else body
    return Exchange(
        "POST", "https://api.example.com/x?y=1", status=status, response_body=text, response_headers=headers
    )


def test_errors_keep_what_the_vendor_said() -> None:
    hubspot = {
        "status": "error",
        "message": "Property values were not valid",
        "category": "VALIDATION_ERROR",
        "errors": [
            {"message": "Email address foo is invalid", "context": {"propertyName": ["email"]}},
            {"message": "Phone is too long", "context": {"propertyName": ["phone"]}},
        ],
    }
    error = error_from_exchange(_exchange(400, hubspot), "Bad Request")
    assert isinstance(error, FatalError)
    assert error.field_errors == {"email": ["Email address foo is invalid"], "phone": ["Phone is too long"]}
    assert str(error).startswith(
        "POST https://api.example.com/x -> 400 Bad Request: Property values were not valid"
    )
    assert "email: Email address foo is invalid" in str(error)

    stripe = {"error": {"type": "invalid_request_error", "message": "No such customer", "param": "customer"}}
    error = error_from_exchange(_exchange(400, stripe))
    assert isinstance(error, FatalError)
    assert error.field_errors == {"customer": ["No such customer"]}

    rails = {"errors": {"vat_number": ["is invalid", "is too short"]}}
    assert error_from_exchange(_exchange(422, rails)).field_errors == {  # type: ignore[union-attr]
        "vat_number": ["is invalid", "is too short"]
    }


def test_expired_tokens_are_told_apart_from_wrong_credentials() -> None:
    expired = error_from_exchange(_exchange(401, {"message": "The OAuth token used expired 5 minutes ago"}))
    header = error_from_exchange(_exchange(401, "", **{"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    wrong = error_from_exchange(_exchange(401, {"message": "Authentication credentials not found"}))
    forbidden = error_from_exchange(_exchange(403, {"message": "token expired"}))
    assert isinstance(expired, AuthError) and expired.expired
    assert isinstance(header, AuthError) and header.expired
    assert isinstance(wrong, AuthError) and not wrong.expired
    assert isinstance(forbidden, AuthError) and not forbidden.expired  # only a 401 is worth a refresh


def test_rate_limited_errors_carry_retry_after() -> None:
    error = error_from_exchange(_exchange(429, {"message": "slow down"}, **{"Retry-After": "7"}))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0
    assert "retry after 7 s" in str(error)
    assert error_from_exchange(_exchange(429, "")).retry_after is None  # type: ignore[union-attr]


def test_parse_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("0.2") == 0.2
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    # An HTTP-date is measured against the response's Date header (the vendor's clock)…
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", "Wed, 21 Oct 2026 07:28:00 GMT") == 30.0
    # …or, without one, against now.
    assert parse_retry_after(formatdate(time.time() + 60, usegmt=True)) == pytest.approx(60, abs=1.5)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: go now


def test_errors_survive_pickling() -> None:
    error = RateLimited("slow down", _exchange(429, "x"), retry_after=2.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimited
    assert (str(copy), copy.retry_after, copy.exchange) == ("slow down", 2.0, error.exchange)


def test_scrubber_masks_names_known_values_and_url_passwords() -> None:
    scrubber = Scrubber(["s3cr3t-value"])
    assert scrubber.url("https://u:pw@api.example.com/p?api_key=k&q=1&refresh_token=r") == (
        "https://u:***@api.example.com/p?api_key=***&q=1&refresh_token=***"
    )
    assert scrubber.body("grant_type=refresh_token&refresh_token=abc&client_secret=def") == (
        "grant_type=refresh_token&refresh_token=***&client_secret=***"
    )
    nested = json.loads(
        scrubber.body(b'{"a": {"access_token": "t", "list": [{"password": "p"}], "n": 1}}') or ""
    )
    assert nested == {"a": {"access_token": "***", "list": [{"password": "***"}], "n": 1}}
    assert scrubber.text("it was s3cr3t-value and Bearer abcdefgh1234") == "it was *** and Bearer ***"
    assert scrubber.headers({"Authorization": "Basic x", "X-Api-Key": "k", "Accept": "a"}) == {
        "Authorization": "***",
        "X-Api-Key": "***",
        "Accept": "a",
    }
    long = scrubber.body("x" * 20_000) or ""
    assert len(long) < 16_100 and long.endswith("[4000 more characters]")


# --- retries ----------------------------------------------------------------------------------------


def test_retries_5xx_then_succeeds(server: ScriptedServer, client: HttpClient) -> None:
    server.on("/items", Reply(500), Reply(502), Reply(503), Reply(200, {"ok": True}))
    assert client.get_json("/items") == {"ok": True}
    assert len(server.requests_to("/items")) == 4


def test_honours_retry_after_in_seconds(server: ScriptedServer, client: HttpClient) -> None:
    server.on("/items", Reply(429, {"message": "slow down"}, {"Retry-After": "0.2"}), Reply(200, {"ok": 1}))
    assert client.get_json("/items") == {"ok": 1}
    first, second = server.requests_to("/items")
    assert 0.2 <= second.at - first.at < 1.0  # backoff alone would have been ≤ 0.01 s


def test_honours_retry_after_as_an_http_date(server: ScriptedServer, client: HttpClient) -> None:
    now = time.time()
    headers = {"Date": formatdate(now, usegmt=True), "Retry-After": formatdate(now + 1, usegmt=True)}
    server.on("/items", Reply(503, "down for maintenance", headers), Reply(200, []))
    assert client.get_json("/items") == []
    first, second = server.requests_to("/items")
    assert 1.0 <= second.at - first.at < 1.2


def test_gives_up_after_the_attempt_cap_with_the_exchange_scrubbed(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    token, client_secret, password = (f"{kind}-{uuid.uuid4().hex}" for kind in ("tok", "cs", "pw"))
    api_key, cookie = f"key-{uuid.uuid4().hex}", f"ck-{uuid.uuid4().hex}"
    echo = {
        "message": f"upstream failed for token {token} (client {client_secret})",
        "refresh_token": f"rt-{uuid.uuid4().hex}",
    }
    server.on("/contacts", Reply(503, echo, {"Set-Cookie": f"session={cookie}", "X-Trace": "t-1"}))
    caplog.set_level(logging.DEBUG, logger="connectors.http")
    policy = HttpPolicy(attempts=3, backoff_base=0.01)
    http = HttpClient(server.url, auth=BearerToken(token), policy=policy, secrets=[client_secret])
    with http, pytest.raises(RetriableError) as raised:
        http.post_json(
            "/contacts",
            {"email": "a@example.com", "password": password, "note": f"for {client_secret}"},
            params={"api_key": api_key, "q": "x"},
            headers={"X-Api-Key": api_key},
        )
    error = raised.value
    assert len(server.requests_to("/contacts")) == 3
    assert server.seen[0].headers["Authorization"] == f"Bearer {token}"  # the secrets did go out

    exchange = error.exchange
    assert exchange is not None and exchange.status == 503 and error.status == 503
    assert exchange.url.endswith("/contacts?api_key=***&q=x")
    assert exchange.request_headers["Authorization"] == "***"
    assert exchange.request_headers["X-Api-Key"] == "***"
    assert json.loads(exchange.request_body or "") == {
        "email": "a@example.com",
        "password": "***",
        "note": "for ***",
    }
    assert json.loads(exchange.response_body or "")["message"] == "upstream failed for token *** (client ***)"
    assert exchange.response_headers["X-Trace"] == "t-1"
    assert exchange.response_headers["Set-Cookie"] == "***"

    everything = " ".join(
        [str(error), repr(error), repr(exchange), json.dumps(exchange.to_dict()), caplog.text]
        + [record.getMessage() + repr(record.__dict__) for record in caplog.records]
    )
    for secret in (token, client_secret, password, api_key, cookie, echo["refresh_token"]):
        assert secret not in everything
    assert error.__cause__ is None and error.__context__ is None


def test_gives_up_when_the_total_time_runs_out(server: ScriptedServer) -> None:
    server.on("/items", Reply(502))
    policy = HttpPolicy(attempts=1000, max_total_seconds=0.3, backoff_base=0.05, backoff_max=0.05)
    started = time.monotonic()
    with HttpClient(server.url, policy=policy) as http, pytest.raises(RetriableError):
        http.get_json("/items")
    # Without the total-time cap the 1,000 attempts would take about 50 s.
    assert time.monotonic() - started < 3
    assert 2 <= len(server.requests_to("/items")) < 1000


def test_a_retry_after_beyond_the_budget_is_raised_at_once(
    server: ScriptedServer, client: HttpClient
) -> None:
    """Long waits are for the job queue, not for a worker sleeping in the client."""
    server.on("/items", Reply(429, {"message": "daily limit"}, {"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(RateLimited) as raised:
        client.get_json("/items")
    assert time.monotonic() - started < 1.0  # not the hour it was told to wait
    assert raised.value.retry_after == 3600
    assert len(server.requests_to("/items")) == 1


@pytest.mark.parametrize(("status", "error_class"), [(400, FatalError), (404, NotFound), (422, FatalError)])
def test_no_retry_for_client_errors(
    server: ScriptedServer, client: HttpClient, status: int, error_class: type[ConnectorError]
) -> None:
    server.on(
        "/items", Reply(status, {"message": "no", "errors": [{"field": "name", "message": "required"}]})
    )
    with pytest.raises(error_class) as raised:
        client.post_json("/items", {"name": ""})
    assert type(raised.value) is error_class
    assert raised.value.status == status
    assert len(server.requests_to("/items")) == 1


def test_timeouts_are_retriable_and_retried(server: ScriptedServer) -> None:
    policy = HttpPolicy(attempts=2, backoff_base=0.01, read_timeout=0.1)
    with HttpClient(server.url, policy=policy) as http:
        server.on("/slow", Reply(200, {"late": True}, delay=0.4), Reply(200, {"late": False}))
        assert http.get_json("/slow") == {"late": False}

        server.on("/slower", Reply(200, {}, delay=2.0))
        started = time.monotonic()
        with pytest.raises(RetriableError, match="timed out") as raised:
            http.get_json("/slower")
    assert time.monotonic() - started < 1.5  # two read timeouts of 0.1 s, not two waits of 2 s
    assert raised.value.exchange is not None and raised.value.exchange.status is None
    assert len(server.requests_to("/slower")) == 2


def test_connection_refused_is_retriable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = HttpPolicy(attempts=2, backoff_base=0.01)
    with HttpClient(f"http://127.0.0.1:{port}", policy=policy) as http, pytest.raises(RetriableError):
        http.get_json("/anything", params={"token": "nope"})


# --- auth -------------------------------------------------------------------------------------------


class RefreshingToken:
    def __init__(self, token: str, new_token: str | None) -> None:
        self.token, self.new_token, self.refreshes = token, new_token, 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def refresh(self) -> bool:
        self.refreshes += 1
        if self.new_token is None:
            return False
        self.token = self.new_token
        return True


def _needs_token(token: str) -> Callable[[Request], Reply]:
    def reply(request: Request) -> Reply:
        if request.headers.get("Authorization") == f"Bearer {token}":
            return Reply(200, {"ok": True})
        return Reply(401, {"category": "EXPIRED_AUTHENTICATION", "message": "The OAuth token expired."})

    return reply


def test_refreshes_an_expired_token_once_then_retries(server: ScriptedServer) -> None:
    server.on("/me", _needs_token("new-token-0002"))
    auth = RefreshingToken("old-token-0001", "new-token-0002")
    with HttpClient(server.url, auth=auth, policy=FAST) as http:
        assert http.get_json("/me") == {"ok": True}
    assert auth.refreshes == 1
    assert [s.headers["Authorization"] for s in server.requests_to("/me")] == [
        "Bearer old-token-0001",
        "Bearer new-token-0002",
    ]


def test_refreshes_only_once_when_the_new_token_is_refused_too(server: ScriptedServer) -> None:
    server.on("/me", _needs_token("a-token-nobody-has"))
    auth = RefreshingToken("old-token-0001", "new-token-0002")
    with HttpClient(server.url, auth=auth, policy=FAST) as http, pytest.raises(AuthError) as raised:
        http.get_json("/me")
    assert raised.value.expired
    assert auth.refreshes == 1
    assert len(server.requests_to("/me")) == 2
    assert "new-token-0002" not in repr(raised.value.exchange)


@pytest.mark.parametrize("status", [401, 403])
def test_wrong_credentials_are_not_refreshed_nor_retried(server: ScriptedServer, status: int) -> None:
    server.on("/me", Reply(status, {"message": "Authentication credentials not found"}))
    auth = RefreshingToken("old-token-0001", "new-token-0002")
    with HttpClient(server.url, auth=auth, policy=FAST) as http, pytest.raises(AuthError) as raised:
        http.get_json("/me")
    assert not raised.value.expired
    assert auth.refreshes == 0
    assert len(server.requests_to("/me")) == 1


def test_an_auth_that_cannot_refresh_fails_at_once(server: ScriptedServer) -> None:
    server.on("/me", _needs_token("another-token"))
    auth = RefreshingToken("old-token-0001", None)
    with HttpClient(server.url, auth=auth, policy=FAST) as http, pytest.raises(AuthError):
        http.get_json("/me")
    assert auth.refreshes == 1
    assert len(server.requests_to("/me")) == 1


# --- bodies, URLs, logging --------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", "", '{"cut": '])
def test_a_2xx_body_that_is_not_json_is_malformed(
    server: ScriptedServer, client: HttpClient, body: str
) -> None:
    server.on("/items", Reply(200, body, {"Content-Type": "text/html"}))
    with pytest.raises(MalformedResponse, match="not JSON") as raised:
        client.get_json("/items")
    assert raised.value.exchange is not None and raised.value.exchange.status == 200
    assert len(server.requests_to("/items")) == 1  # not retried: a write may have happened


def test_no_content_is_none(server: ScriptedServer, client: HttpClient) -> None:
    server.on("/items/1", Reply(204))
    assert client.delete_json("/items/1") is None
    assert server.seen[0].method == "DELETE"


def test_sends_json_params_default_headers_and_a_timeout(server: ScriptedServer) -> None:
    server.on("/search", Reply(200, {"results": []}))
    with HttpClient(server.url + "/", headers={"User-Agent": "abohub-test"}) as http:
        assert http.post_json("search", {"q": "x"}, params={"limit": 10}) == {"results": []}
    seen = server.seen[0]
    assert (seen.method, seen.path, seen.query) == ("POST", "/search", "limit=10")
    assert json.loads(seen.body) == {"q": "x"}
    assert seen.headers["User-Agent"] == "abohub-test"
    assert seen.headers["Content-Type"] == "application/json"


def test_follows_absolute_urls_of_its_own_host_only(server: ScriptedServer, client: HttpClient) -> None:
    server.on("/page2", Reply(200, {"page": 2}))
    assert client.get_json(f"{server.url}/page2") == {"page": 2}
    with pytest.raises(ValueError, match="outside"):
        client.get_json("https://elsewhere.example.com/page2")


def test_logs_each_attempt_at_debug(
    server: ScriptedServer, client: HttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    server.on("/items", Reply(500), Reply(200, {}))
    caplog.set_level(logging.DEBUG, logger="connectors.http")
    client.get_json("/items", params={"access_token": "in-the-query-0001"})
    lines = [r for r in caplog.records if hasattr(r, "attempt")]
    assert [(r.method, r.path, r.status, r.attempt) for r in lines] == [  # type: ignore[attr-defined]
        ("GET", "/items", 500, 1),
        ("GET", "/items", 200, 2),
    ]
    assert all(r.levelno == logging.DEBUG and r.duration_ms >= 0 for r in lines)  # type: ignore[attr-defined]
    assert "in-the-query-0001" not in caplog.text


# --- rate limiting ----------------------------------------------------------------------------------


def test_acquires_the_bucket_before_each_request(server: ScriptedServer) -> None:
    server.on("/items", Reply(200, {}))
    bucket = TokenBucket("http-pacing", rate_per_second=20, capacity=1, backend=LocalBackend())
    with HttpClient(server.url, bucket=bucket) as http:
        for _ in range(5):
            http.get_json("/items")
    arrivals = [s.at for s in server.seen]
    assert arrivals[-1] - arrivals[0] >= 4 / 20 * 0.95


def test_a_429_pauses_every_worker_sharing_the_bucket(server: ScriptedServer) -> None:
    """Worker A is told 429 Retry-After 0.3; worker B, another client on the same Redis bucket,
    waits too instead of hitting the vendor."""
    prefix = f"abohub-test:{uuid.uuid4().hex}:"
    connections = [redis.Redis.from_url(REDIS_URL) for _ in range(2)]
    buckets = [TokenBucket("vendor", 100, 10, RedisBackend(c, prefix)) for c in connections]
    server.on("/a", Reply(429, {"message": "slow down"}, {"Retry-After": "0.3"}))
    server.on("/b", Reply(200, {"ok": True}))
    once = HttpPolicy(attempts=1)
    try:
        with (
            HttpClient(server.url, bucket=buckets[0], policy=once) as a,
            HttpClient(server.url, bucket=buckets[1], policy=once) as b,
        ):
            with pytest.raises(RateLimited):
                a.get_json("/a")
            assert b.get_json("/b") == {"ok": True}
        assert server.requests_to("/b")[0].at - server.requests_to("/a")[0].at >= 0.28
    finally:
        connections[0].delete(prefix + "vendor")
        for connection in connections:
            connection.close()


def test_an_exhausted_bucket_becomes_rate_limited_within_the_budget(server: ScriptedServer) -> None:
    server.on("/items", Reply(200, {}))
    bucket = TokenBucket("http-exhausted", rate_per_second=0.5, capacity=1, backend=LocalBackend())
    policy = HttpPolicy(max_total_seconds=0.2, backoff_base=0.01)
    with HttpClient(server.url, bucket=bucket, policy=policy) as http:
        http.get_json("/items")
        started = time.monotonic()
        with pytest.raises(RateLimited) as raised:
            http.get_json("/items")
    assert time.monotonic() - started < 0.5  # not the 2 s the bucket would need
    assert raised.value.retry_after == pytest.approx(2.0, abs=0.1)
    assert len(server.seen) == 1
