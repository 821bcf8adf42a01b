"""One place that turns errors into HTTP statuses and JSON bodies.

Every error body is ``{"error": {"type", "message", "fields"}}`` where
``fields`` names each bad input and what is wrong with it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from hub.domain.errors import AbohubError, IllegalTransition, InvalidRequest, NotFound, StateConflict

log = logging.getLogger(__name__)

STATUS_FOR: dict[type[AbohubError], int] = {
    NotFound: 404,
    InvalidRequest: 422,
    IllegalTransition: 409,
    StateConflict: 409,
}


def error_response(
    status: int,
    kind: str,
    message: str,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ResponseReturnValue:
    body = {"error": {"type": kind, "message": message, "fields": fields or {}}}
    return jsonify(body), status, headers or {}


def flatten(messages: Any) -> dict[str, list[str]]:
    """Field messages by field name, whatever the location.

    ``{"json": {"email": [...]}, "query": {"limit": [...]}}`` → ``{"email": [...], "limit": [...]}``.
    """
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            flat.setdefault(prefix or "_schema", []).extend(value)
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(f"{prefix}.{index}", inner)
        else:
            flat.setdefault(prefix or "_schema", []).append(str(value))

    for _location, fields in (messages or {}).items():
        walk("", fields)
    return flat


def handle_http(error: HTTPException) -> ResponseReturnValue:
    data = getattr(error, "data", None) or {}
    status = error.code or 500
    if status == 422:
        fields = flatten(data.get("messages") or data.get("errors"))
        return error_response(422, "validation_error", "the request has invalid fields", fields)
    kind = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        415: "unsupported_media_type",
    }
    message = data.get("message") or error.description or error.name
    return error_response(
        status, kind.get(status, "error"), message, flatten(data.get("errors")), data.get("headers")
    )


def handle_domain(error: AbohubError) -> ResponseReturnValue:
    status = next((code for kind, code in STATUS_FOR.items() if isinstance(error, kind)), 400)
    return error_response(status, error.code, error.message, error.fields)


def handle_integrity(error: IntegrityError) -> ResponseReturnValue:
    log.warning("integrity error turned into 409: %s", error.orig.__class__.__name__)
    return error_response(409, "conflict", "the change conflicts with existing data; reload and retry")


def handle_busy(error: OperationalError) -> ResponseReturnValue:
    log.exception("database unavailable")
    return error_response(
        503, "unavailable", "the database is busy or unavailable; retry shortly", headers={"Retry-After": "1"}
    )


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    log.exception("unhandled error")
    return error_response(500, "internal_error", "something went wrong on our side; it has been logged")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(AbohubError, handle_domain)
    app.register_error_handler(IntegrityError, handle_integrity)
    app.register_error_handler(OperationalError, handle_busy)
    app.register_error_handler(Exception, handle_unexpected)
