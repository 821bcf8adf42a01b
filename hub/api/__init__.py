"""The REST API under /api/v1/, described by OpenAPI 3 at /api/openapi.json."""

from __future__ import annotations

from apispec import BasePlugin
from flask import Flask, request
from flask.typing import ResponseReturnValue
from flask_smorest import Api

from hub.api import (
    auth,
    billing,
    catalog,
    conflicts,
    connections,
    customers,
    dead_letters,
    events,
    idempotency,
    mappings,
    metrics,
    subscriptions,
)
from hub.api import errors as api_errors
from hub.api.schemas import ErrorSchema

API_PREFIX = "/api/v1/"


class IdempotencyHeaderPlugin(BasePlugin):
    """Documents the optional ``Idempotency-Key`` header on every POST."""

    def operation_helper(self, path=None, operations=None, **kwargs):  # type: ignore[no-untyped-def]
        post = (operations or {}).get("post")
        if post is not None:
            post.setdefault("parameters", []).append(
                {
                    "name": idempotency.HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Makes the POST safe to retry: the same key and body replay the first "
                    "response for 24 hours; the same key with another body is a 400.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]+$"},
                }
            )


class AbohubApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):  # type: ignore[no-untyped-def]
        return api_errors.handle_http(error)


def _before_api() -> ResponseReturnValue | None:
    if not request.path.startswith(API_PREFIX):
        return None
    return auth.require_api_key() or idempotency.before()


def init_app(app: Flask) -> Api:
    app.config.update(
        API_TITLE="Abohub",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Subscriptions, invoices, payments and metrics. Amounts are integer "
                "minor units with a currency; timestamps are ISO 8601 with an offset."
            },
            "security": [{"bearerAuth": []}],
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        },
    )
    api = AbohubApi(app, spec_kwargs={"extra_plugins": [IdempotencyHeaderPlugin()]})
    for module in (customers, catalog, subscriptions, billing, events, metrics, conflicts, dead_letters):
        api.register_blueprint(module.blp)
    for module in (connections, mappings):
        api.register_blueprint(module.blp)
    app.before_request(_before_api)
    app.after_request(idempotency.after)
    api_errors.init_app(app)
    return api
