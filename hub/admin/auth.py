"""Signing in and out (Flask-Login over server-side sessions) and who may do what.

Flask-Login keeps only the session token in the signed cookie (its "alternative
id"); :func:`hub.services.users.identity_for` turns it back into a user on each
request, so a session ended on the server is ended everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect

from hub.admin.context import hub
from hub.admin.forms import LoginForm
from hub.services.users import LoginOutcome, StaffIdentity, identity_for, log_in, log_out

F = TypeVar("F", bound=Callable[..., Any])

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
POSTS_FOR_EVERY_ROLE = frozenset({"admin.login", "admin.logout"})
REFUSED = "Unknown username or wrong password."

login_manager = LoginManager()
csrf = CSRFProtect()


class SignedInStaff:
    """The signed-in person as Flask-Login sees them; ``get_id`` is the session token."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, identity: StaffIdentity) -> None:
        self.identity = identity
        self.id = identity.id
        self.username = identity.username
        self.role = identity.role
        self.locale = identity.locale

    @property
    def is_admin(self) -> bool:
        return self.identity.is_admin

    def get_id(self) -> str:
        return self.identity.session_token


@login_manager.user_loader
def _load(token: str) -> SignedInStaff | None:
    identity = identity_for(token, hub().uow())
    return SignedInStaff(identity) if identity else None


def requires(role: str) -> Callable[[F], F]:
    """A view only people with ``role`` may use (the blueprint guard already refuses viewers' POSTs)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if role == "admin" and not current_user.is_admin:
                abort(403)
            return view(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def guard() -> ResponseReturnValue | None:
    """Before every admin request: CSRF on every change, a signed-in user, and viewers only read."""
    if request.method not in SAFE_METHODS:
        csrf.protect()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    changes = request.method not in SAFE_METHODS and request.endpoint not in POSTS_FOR_EVERY_ROLE
    if changes and not current_user.is_admin:
        abort(403)
    return None


def _safe_next(target: str | None) -> str:
    """Only a path inside the admin: never an open redirect to another site."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin/") or "\\" in (target or ""):
        return url_for("admin.dashboard")
    return parts.path + (f"?{parts.query}" if parts.query else "")


def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("admin/login.html", form=form), 400 if request.method == "POST" else 200
    address = request.remote_addr or "unknown"
    result = log_in(form.username.data or "", form.password.data or "", address, hub().uow())
    if result.outcome is LoginOutcome.THROTTLED:
        minutes = int(result.retry_after.total_seconds() // 60) if result.retry_after else 15
        flash(f"Too many attempts from here. Try again in {minutes} minutes.", "error")
        return render_template("admin/login.html", form=form), 429, {"Retry-After": str(minutes * 60)}
    if result.identity is None:
        form.password.errors = [REFUSED]
        return render_template("admin/login.html", form=form), 401
    target = _safe_next(request.args.get("next"))
    session.clear()  # a fresh session: nothing from before signing in carries over
    login_user(SignedInStaff(result.identity), fresh=True)
    flash(f"Signed in as {result.identity.username}.", "success")
    return redirect(target)


def logout() -> ResponseReturnValue:
    log_out(current_user.identity, hub().uow(f"staff:{current_user.id}"))
    logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("admin.login"))


def init_app(blueprint: Blueprint) -> None:
    login_manager.login_view = "admin.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    blueprint.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    blueprint.add_url_rule("/logout", "logout", logout, methods=["POST"])
    blueprint.before_request(guard)

    @blueprint.record_once
    def _attach(state: Any) -> None:
        state.app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # only the admin's POSTs are checked
        login_manager.init_app(state.app)
        csrf.init_app(state.app)
