"""API-key authentication: ``Authorization: Bearer abo_...``."""

from __future__ import annotations

from flask import g, request
from flask.typing import ResponseReturnValue

from hub.api.context import hub
from hub.api.errors import error_response
from hub.services.apikeys import authenticate


def require_api_key() -> ResponseReturnValue | None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return error_response(
            401,
            "unauthorized",
            "send an API key as 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="abohub"'},
        )
    key = authenticate(secret.strip(), hub().uow())
    if key is None:
        return error_response(
            401,
            "unauthorized",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="abohub", error="invalid_token"'},
        )
    g.api_key = key
    return None
