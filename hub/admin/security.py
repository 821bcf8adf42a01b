"""Cookies and headers of the admin's responses."""

from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface

ADMIN_PREFIX = "/admin"

HEADERS = {
    # No inline script or style, no frames, forms post only to us.
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SecureWhenHttpsSessionInterface(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` whenever the request came over HTTPS.

    ``request.is_secure`` follows ``X-Forwarded-Proto`` only when the app is
    wrapped in Werkzeug's ``ProxyFix``, so a client cannot fake it.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def add_headers(response: Response) -> Response:
    if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith(ADMIN_PREFIX + "/static/"):
            response.headers.setdefault("Cache-Control", "no-store")  # staff data stays out of caches
    return response


def init_app(app: Flask) -> None:
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    app.session_interface = SecureWhenHttpsSessionInterface()
    app.after_request(add_headers)
