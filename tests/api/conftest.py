"""API fixtures: the real app on the test database, a key, and a client that sends it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.app import create_app
from hub.bootstrap import Hub
from hub.services.apikeys import create_api_key


@pytest.fixture
def app(hub: Hub) -> Flask:
    return create_app(hub=hub)


@pytest.fixture
def api_key(hub: Hub) -> str:
    return create_api_key("tests", hub.uow("tests")).secret


class ApiClient:
    """A test client that authenticates every call and returns (status, json)."""

    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        response = self.client.get(f"/api/v1{path}", query_string=params, headers=self.headers)
        return response.status_code, response.get_json()

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = self.client.post(
            f"/api/v1{path}",
            json=body if body is not None else {},
            headers={**self.headers, **(headers or {})},
        )
        return response.status_code, response.get_json()

    def patch(self, path: str, body: Any) -> tuple[int, Any]:
        response = self.client.patch(f"/api/v1{path}", json=body, headers=self.headers)
        return response.status_code, response.get_json()


@pytest.fixture
def api(app: Flask, api_key: str) -> ApiClient:
    return ApiClient(app.test_client(), api_key)
