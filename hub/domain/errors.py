"""The domain's errors. The HTTP status for each is chosen once, in ``hub.api.errors``."""

from __future__ import annotations


class AbohubError(Exception):
    """Root of every error Abohub raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(AbohubError):
    code = "not_found"


class InvalidRequest(AbohubError):
    """The request is well-formed but a value is not acceptable (e.g. wrong currency)."""

    code = "invalid_request"


class IllegalTransition(AbohubError):
    """The subscription's current state does not allow the requested operation."""

    code = "illegal_transition"

    def __init__(self, action: str, status: str, message: str | None = None) -> None:
        super().__init__(message or f"cannot {action.replace('_', ' ')} a subscription that is {status}")
        self.action = action
        self.status = status


class StateConflict(AbohubError):
    """The record changed in a way that makes the request impossible (e.g. already paid)."""

    code = "conflict"
