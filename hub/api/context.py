"""Access to the composition root from inside a request."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import current_app, g

from hub.bootstrap import Hub
from hub.domain.errors import NotFound
from hub.services.uow import UnitOfWork
from hub.store.models import Base

ModelT = TypeVar("ModelT", bound=Base)


def hub() -> Hub:
    return current_app.extensions["abohub"]


def actor() -> str:
    key = getattr(g, "api_key", None)
    return f"api_key:{key.id}" if key is not None else "anonymous"


def uow() -> UnitOfWork:
    return hub().uow(actor())


def fetch(model: type[ModelT], record_id: Any, kind: str) -> ModelT:
    """One record by primary key, or :class:`NotFound` naming what was asked for."""
    with hub().session_factory() as session:
        found = session.get(model, record_id)
        if found is None:
            raise NotFound(f"no {kind} {record_id}")
        return found
