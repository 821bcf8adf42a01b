"""Admin fixtures: the real app on the test database, staff users, and a browser-like client.

CSRF stays on in every admin test: the client reads the token from the page, as a browser would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hub.app import create_app
from hub.bootstrap import Hub
from hub.services import users
from hub.services.crypto import generate_key
from hub.services.users import create_user
from tests.conftest import make_hub, wipe

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


@pytest.fixture(autouse=True)
def quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id with the smallest cost, as Django's tests do: the behaviour is the same, the
    run is seconds shorter. The production cost is what hub.services.users sets."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "_hasher", cheap)
    monkeypatch.setattr(users, "_DUMMY_HASH", cheap.hash("not a password"))


@pytest.fixture
def hub(database: str) -> Iterator[Hub]:
    instance = make_hub(database, encryption_keys=(generate_key(),))
    wipe(instance)
    yield instance
    instance.close()


@pytest.fixture
def app(hub: Hub) -> Flask:
    app = create_app(hub=hub)
    assert app.config.get("WTF_CSRF_ENABLED", True)
    return app


@pytest.fixture
def admin_user(hub: Hub) -> Any:
    return create_user("ada", PASSWORD, "admin", hub.uow("tests"))


@pytest.fixture
def viewer_user(hub: Hub) -> Any:
    return create_user("victor", PASSWORD, "viewer", hub.uow("tests"))


def csrf_token(page: TestResponse) -> str:
    found = CSRF.search(page.get_data(as_text=True))
    assert found, "the page has no CSRF token"
    return found.group(1)


class Browser:
    """A test client used like a browser: forms carry the token of the page they came from."""

    def __init__(self, client: FlaskClient, address: str = "192.0.2.10") -> None:
        self.client = client
        self.address = address

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, environ_base={"REMOTE_ADDR": self.address}, **kwargs)

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, token_from: str = "/admin/"
    ) -> TestResponse:
        token = csrf_token(self.get(token_from))
        return self.post_raw(path, {"csrf_token": token, **(data or {})})

    def post_raw(self, path: str, data: dict[str, Any], **kwargs: Any) -> TestResponse:
        return self.client.post(path, data=data, environ_base={"REMOTE_ADDR": self.address}, **kwargs)

    def login(self, username: str, password: str = PASSWORD) -> TestResponse:
        return self.post(
            "/admin/login", {"username": username, "password": password}, token_from="/admin/login"
        )

    def session_cookie(self) -> str | None:
        cookie = self.client.get_cookie("session")
        return cookie.value if cookie else None


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app.test_client())


@pytest.fixture
def admin(app: Flask, admin_user: Any) -> Browser:
    signed_in = Browser(app.test_client())
    assert signed_in.login("ada").status_code == 302
    return signed_in


@pytest.fixture
def viewer(app: Flask, viewer_user: Any) -> Browser:
    signed_in = Browser(app.test_client())
    assert signed_in.login("victor").status_code == 302
    return signed_in
