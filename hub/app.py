"""The application factory: one ``init_app`` per subsystem, nothing at import time."""

from __future__ import annotations

from flask import Flask, jsonify, url_for
from flask.typing import ResponseReturnValue
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings, load_settings
from hub import admin, api, logs, webhooks
from hub.bootstrap import Hub, build

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> Flask:
    settings = settings or (hub.settings if hub else load_settings())
    if not settings.testing:
        logs.configure(settings)
    hub = hub or build(settings)
    app = Flask("abohub")
    app.config.update(
        SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=MAX_BODY_BYTES, TESTING=settings.testing
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["abohub"] = hub
    if settings.proxy_hops:
        # The client's address (login throttling), scheme (Secure cookies) and host (webhook signatures
        # cover the URL) as the trusted proxies saw them; with no proxy configured nothing is trusted.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]
    api.init_app(app)
    webhooks.init_app(app)
    admin.init_app(app)

    @app.get("/")
    def index() -> ResponseReturnValue:
        return jsonify(
            name="Abohub",
            api=url_for("index", _external=True) + "api/v1/",
            openapi=url_for("api-docs.openapi_json", _external=True),
        )

    @app.get("/health")
    def health() -> ResponseReturnValue:
        from sqlalchemy import text

        with hub.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return jsonify(status="ok")

    return app
