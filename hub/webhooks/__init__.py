"""Webhook receivers: ``POST /webhooks/<connection_id>``, where vendors tell Abohub about changes.

No API key (a vendor cannot send one): authenticity is the connection's
connector checking the vendor's signature over the raw body, in constant time,
within the vendor's timestamp window. Verifying and storing is
:mod:`hub.services.webhooks`; this package is the HTTP edge, and it queues the
processing job once the events are stored (:mod:`hub.webhooks.processing`).

=====================================================  ======  =================================
Request                                                Status  Stored
=====================================================  ======  =================================
body over ``WEBHOOKS_MAX_BYTES`` (256 KiB)              413     nothing
unknown or disabled connection, or no webhooks          404     nothing
signature missing, wrong or outside the time window     401     nothing
authentic, but the body is not what the vendor sends    400     nothing
authentic and well formed                               200     each new event once; one job
the same events again (vendor retry, duplicate)         200     nothing new (job re-queued)
stored, but the job could not be queued                 503     the events (a retry re-queues)
=====================================================  ======  =================================

Errors have the API's body, ``{"error": {"type", "message", "fields"}}``; a
success is ``{"received": n, "stored": n, "duplicates": n}``. Logs carry the
connection id, event counts, status and time; never headers or bodies.

**The URL that is verified.** Vendors sign the URL they called (HubSpot v3:
method + URI + body + timestamp), so the receiver must see that URL exactly.
By default it is ``request.url`` (scheme and host as this server received
them). Behind a TLS-terminating reverse proxy the vendor called
``https://public.host/webhooks/…`` while this server sees
``http://127.0.0.1:8000/webhooks/…``: set ``WEBHOOKS_BEHIND_PROXY`` and the
receiver rebuilds the URL from ``X-Forwarded-Proto``, ``X-Forwarded-Host``,
``X-Forwarded-Port`` and ``X-Forwarded-Prefix`` (the last value of each, the
one the nearest proxy set). Only turn it on when a proxy you run sets (and
overwrites) those headers: otherwise anyone can choose the URL the signature is
checked against. It is off by default; the app config key
``WEBHOOKS_BEHIND_PROXY`` defaults to the setting ``behind_proxy`` once
``config.Settings`` has one (``ABOHUB_BEHIND_PROXY``), and to False until then.
"""

from __future__ import annotations

from flask import Flask

from hub.services.webhooks import WebhookReceiver
from hub.webhooks.processing import ProcessingQueue
from hub.webhooks.receiver import DEFAULT_MAX_BYTES, EXTENSION, PROCESSING, blp
from jobs.runtime import make_queue

__all__ = ["DEFAULT_MAX_BYTES", "EXTENSION", "PROCESSING", "blp", "init_app"]


def init_app(app: Flask) -> None:
    hub = app.extensions["abohub"]
    app.config.setdefault("WEBHOOKS_MAX_BYTES", DEFAULT_MAX_BYTES)
    app.config.setdefault("WEBHOOKS_BEHIND_PROXY", bool(getattr(hub.settings, "behind_proxy", False)))
    app.extensions[PROCESSING] = ProcessingQueue(lambda: make_queue(hub))
    # Looked up at each call, so that the queue in use is the app's current one.
    app.extensions[EXTENSION] = WebhookReceiver(
        hub, queue_processing=lambda connection_id: app.extensions[PROCESSING].request(connection_id)
    )
    app.register_blueprint(blp)
