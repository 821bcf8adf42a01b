"""The staff admin at ``/admin/``: server-rendered pages over the same services as the API.

``init_app`` wires the blueprint, sign-in (:mod:`hub.admin.auth`), cookies and
security headers (:mod:`hub.admin.security`), the template helpers and the
error pages: a person sees a friendly page, never a stack trace.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, NotFound

from hub.admin import auth, formatting, security
from hub.admin.navigation import NAVIGATION, is_current
from hub.admin.views import (
    audit,
    conflicts,
    connections,
    customers,
    dashboard,
    mappings,
    subscriptions,
    sync_log,
    users,
)
from hub.domain.errors import AbohubError
from hub.domain.errors import NotFound as RecordNotFound

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    403: "Your role does not allow this. Ask an admin if you need it.",
    404: "There is nothing here.",
    405: "That does not work here.",
    429: "Too many requests; wait a little and try again.",
}


def error_page(status: int, message: str) -> ResponseReturnValue:
    return render_template("admin/error.html", status=status, message=message), status


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    return error_page(status, MESSAGES.get(status, "Something went wrong."))


def _csrf_error(error: CSRFError) -> ResponseReturnValue:
    return error_page(
        400, "The form had expired or was not sent from this site. Reload the page and try again."
    )


def _domain_error(error: AbohubError) -> ResponseReturnValue:
    if isinstance(error, RecordNotFound):
        return error_page(404, MESSAGES[404])
    return error_page(400, error.message)


def _unexpected(error: Exception) -> ResponseReturnValue:
    log.exception("admin page failed: %s %s", request.method, request.path)
    return error_page(500, "Something went wrong on our side. It has been logged; try again in a moment.")


def _not_found(path: str) -> ResponseReturnValue:
    raise NotFound()


def _template_context() -> dict[str, object]:
    locale = getattr(current_user, "locale", formatting.DEFAULT_LOCALE)

    def money(minor: int | None, currency: str) -> str:
        return formatting.money(minor, currency, locale)

    return {
        "navigation": NAVIGATION,
        "is_current": is_current,
        "money": money,
        "percent": lambda rate: formatting.percent(rate, locale),
        "ratio": lambda value: formatting.ratio(value, locale),
        "when": lambda moment: formatting.when(moment, locale),
    }


def create_blueprint() -> Blueprint:
    blueprint = Blueprint(
        "admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static"
    )
    auth.init_app(blueprint)
    dashboard.init_app(blueprint)
    users.init_app(blueprint)
    customers.init_app(blueprint)
    subscriptions.init_app(blueprint)
    conflicts.init_app(blueprint)
    sync_log.init_app(blueprint)
    connections.init_app(blueprint)
    mappings.init_app(blueprint)
    audit.init_app(blueprint)
    blueprint.add_url_rule("/<path:path>", "not_found", _not_found, methods=["GET", "POST"])
    blueprint.context_processor(_template_context)
    blueprint.register_error_handler(CSRFError, _csrf_error)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.register_error_handler(AbohubError, _domain_error)
    blueprint.register_error_handler(Exception, _unexpected)
    return blueprint


def init_app(app: Flask) -> None:
    security.init_app(app)
    app.register_blueprint(create_blueprint())
