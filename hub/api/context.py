"""Access to the composition root from inside a request."""

from __future__ import annotations

from flask import current_app, g

from hub.bootstrap import Hub
from hub.services.uow import UnitOfWork


def hub() -> Hub:
    return current_app.extensions["abohub"]


def actor() -> str:
    key = getattr(g, "api_key", None)
    return f"api_key:{key.id}" if key is not None else "anonymous"


def uow() -> UnitOfWork:
    return hub().uow(actor())
