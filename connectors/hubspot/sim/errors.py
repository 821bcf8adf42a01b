"""HubSpot's error bodies, raised as :class:`ApiError` inside the simulator.

The v3 APIs answer errors as ``{"status": "error", "message", "correlationId",
"category", ...}``; property validation failures put a JSON list of
per-property results inside the message, after ``Property values were not
valid: ``. The OAuth token endpoint uses its own shape (``status`` is the
error code, e.g. ``BAD_REFRESH_TOKEN``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any


def correlation_id() -> str:
    return str(uuid.uuid4())


class ApiError(Exception):
    """An HTTP error answer with a JSON body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body
        self.headers = headers or {}


def body(message: str, category: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "error", "message": message, "correlationId": correlation_id()}
    if category is not None:
        out["category"] = category
    out.update(extra)
    return out


def missing_scopes(scope: str) -> dict[str, Any]:
    """HubSpot's answer when the app's token lacks a scope the call needs."""
    return body(
        "This app hasn't been granted all required scopes to make this call.",
        "MISSING_SCOPES",
        errors=[
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": [scope]},
            }
        ],
    )


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, body(message, "VALIDATION_ERROR", **extra))


def not_found(message: str = "resource not found") -> ApiError:
    return ApiError(404, body(message, "OBJECT_NOT_FOUND"))


def conflict(message: str) -> ApiError:
    return ApiError(409, body(message, "CONFLICT"))


def validation_result(name: str, error: str, message: str, portal_id: int) -> dict[str, Any]:
    """One entry of the list HubSpot embeds in ``Property values were not valid: [...]``."""
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
        "portalId": portal_id,
    }


class PropertyErrors(Exception):
    """Collected per-property validation failures for one input."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        super().__init__(results[0]["message"] if results else "invalid")
        self.results = results

    def api_error(self) -> ApiError:
        text = "Property values were not valid: " + json.dumps(self.results, separators=(",", ":"))
        return ApiError(400, body(text, "VALIDATION_ERROR"))


def unauthenticated() -> ApiError:
    return ApiError(
        401,
        body(
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
            "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        ),
    )


def expired(ago: str, expire_time_iso: str) -> ApiError:
    return ApiError(
        401,
        body(
            f"The OAuth token used to make this call expired {ago} ago.",
            "EXPIRED_AUTHENTICATION",
            context={"expire time": [expire_time_iso]},
        ),
    )


def oauth_error(code: str, message: str) -> ApiError:
    """The token endpoint's own error shape."""
    return ApiError(400, {"status": code, "message": message, "correlationId": correlation_id()})
