"""The webhook endpoint: read the raw body within the limit, work out the URL the vendor called,
hand both to the receiver service, queue the processing job, and answer at once (see
:mod:`hub.webhooks`)."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Request, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.utils import get_current_url

from hub.domain.errors import NotFound
from hub.services.webhooks import (
    MalformedWebhook,
    WebhookReceiver,
    WebhookUnauthorized,
    WebhookUnavailable,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024
EXTENSION = "abohub.webhooks"
PROCESSING = "abohub.webhooks.processing"
DEFAULT_PORTS = {"http": "80", "https": "443"}
RETRY = {"Retry-After": "5"}

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> ResponseReturnValue:
    """The API's error body (``hub.api.errors``), kept here so the two edges stay independent."""
    return jsonify({"error": {"type": kind, "message": message, "fields": {}}}), status, headers or {}


def _last(req: Request, header: str) -> str | None:
    """The value the nearest proxy set: the last of a comma-separated list."""
    value = req.headers.get(header)
    if not value:
        return None
    return value.split(",")[-1].strip() or None


def vendor_url(req: Request, behind_proxy: bool) -> str:
    """The URL as the vendor called it (and signed it)."""
    if not behind_proxy:
        return req.url
    scheme = (_last(req, "X-Forwarded-Proto") or req.scheme).lower()
    host = _last(req, "X-Forwarded-Host") or req.host
    port = _last(req, "X-Forwarded-Port")
    if port:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") and ":" in host else host
        host = name if DEFAULT_PORTS.get(scheme) == port else f"{name}:{port}"
    elif ":" in host and not host.endswith("]") and DEFAULT_PORTS.get(scheme) == host.rsplit(":", 1)[1]:
        host = host.rsplit(":", 1)[0]
    prefix = _last(req, "X-Forwarded-Prefix")
    root_path = prefix.rstrip("/") if prefix else req.root_path
    return get_current_url(scheme, host, root_path, req.path, req.query_string)


def _done(connection_id: str, status: int, started: float, **counts: Any) -> None:
    elapsed = (time.perf_counter() - started) * 1000
    details = " ".join(f"{k}={v}" for k, v in counts.items())
    level = logging.INFO if status < 400 else logging.ERROR if status >= 500 else logging.WARNING
    log.log(level, "webhook connection=%s status=%d %s ms=%.1f", connection_id[:40], status, details, elapsed)


@blp.post("/<connection_id>")
def receive(connection_id: str) -> ResponseReturnValue:
    started = time.perf_counter()
    limit: int = current_app.config["WEBHOOKS_MAX_BYTES"]
    too_large = f"a webhook body may be at most {limit} bytes"
    if request.content_length is not None and request.content_length > limit:
        _done(connection_id, 413, started, bytes=request.content_length)
        return error(413, "too_large", too_large)
    # A chunked body has no Content-Length: werkzeug stops reading it at max_content_length and
    # returns what it read (no error), so read one byte more than allowed to tell "over" from "at".
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=False)  # the raw bytes the vendor signed; nothing parsed yet
    except RequestEntityTooLarge:
        body = None
    if body is None or len(body) > limit:
        _done(connection_id, 413, started, bytes="over")
        return error(413, "too_large", too_large)
    receiver: WebhookReceiver = current_app.extensions[EXTENSION]
    url = vendor_url(request, current_app.config["WEBHOOKS_BEHIND_PROXY"])
    try:
        receipt = receiver.receive(connection_id, request.method, url, request.headers, body)
    except NotFound:
        _done(connection_id, 404, started)
        return error(404, "not_found", "no connection takes webhooks at this address")
    except WebhookUnauthorized as exc:
        _done(connection_id, 401, started, reason=repr(exc.message[:120]))
        return error(401, "unauthorized", "the webhook's signature is missing, does not match, or is too old")
    except MalformedWebhook as exc:
        _done(connection_id, 400, started, bytes=len(body), reason=repr(exc.message[:120]))
        return error(400, "bad_request", f"the webhook body is malformed: {exc.message}")
    except WebhookUnavailable as exc:
        _done(connection_id, 503, started)
        return error(503, "unavailable", exc.message, RETRY)
    counts = {"events": receipt.events, "stored": receipt.stored, "duplicates": receipt.duplicates}
    if receipt.queued is None:
        _done(connection_id, 503, started, **counts)
        return error(
            503, "unavailable", "the events are stored but could not be queued; retry the delivery", RETRY
        )
    _done(connection_id, 200, started, **counts, queued=receipt.queued)
    return jsonify(received=receipt.events, stored=receipt.stored, duplicates=receipt.duplicates)
