"""What an admin view reaches: the composition root and a unit of work acting as the signed-in person."""

from __future__ import annotations

from flask import current_app
from flask_login import current_user

from hub.bootstrap import Hub
from hub.services.uow import UnitOfWork


def hub() -> Hub:
    return current_app.extensions["abohub"]


def actor() -> str:
    return f"staff:{current_user.id}" if current_user.is_authenticated else "anonymous"


def uow() -> UnitOfWork:
    """Every change made from the admin is recorded with the staff user as actor."""
    return hub().uow(actor())
