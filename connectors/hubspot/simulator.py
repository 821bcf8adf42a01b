"""A simulator of HubSpot's CRM API: a real HTTP server on 127.0.0.1.

For the connector's tests, the benchmarks and the demo::

    with HubSpotSimulator(webhook_urls=["http://127.0.0.1:5000/webhooks/7"]) as sim:
        requests.get(sim.base_url + "/crm/v3/objects/contacts", headers=sim.headers())
        sim.edit("contacts", contact_id, {"firstname": "Ann"})   # a "UI" edit: fires webhooks
        sim.flush_webhooks()

It covers what a connector uses: private-app tokens and OAuth (authorization
code, refresh, expiry), contacts/companies/deals with HubSpot's default and
custom properties, list with ``after`` paging, read/create/update/archive,
the batch endpoints (100 inputs, 207 partial errors), associations (v4: batch
create/default/read/archive and the list endpoint), search (filter groups,
sorts, 200 per page, 10,000 cap, ``lastmodifieddate`` semantics), validation
and conflict errors in HubSpot's shapes, rate limits with their headers and
429 bodies, signed webhooks (v3 and v1), and faults injected on request.
Parts live in :mod:`connectors.hubspot.sim`.

Standalone: ``python -m connectors.hubspot.simulator --port 8200``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from connectors.hubspot.sim import errors
from connectors.hubspot.sim.app import HubSpotApp, Limits
from connectors.hubspot.sim.associations import DEFAULT_TYPES
from connectors.hubspot.sim.auth import DEFAULT_SCOPES, Auth
from connectors.hubspot.sim.clock import SimClock
from connectors.hubspot.sim.faults import Faults
from connectors.hubspot.sim.ratelimit import RateLimits
from connectors.hubspot.sim.schema import Schema
from connectors.hubspot.sim.search import SearchLimits
from connectors.hubspot.sim.stats import Stats
from connectors.hubspot.sim.store import Store
from connectors.hubspot.sim.webhooks import Delivery, Webhooks, sign_v1, sign_v2, sign_v3

__all__ = ["Delivery", "HubSpotSimulator", "SimClock", "sign_v1", "sign_v2", "sign_v3"]

UI_SOURCE_ID = "userId:1"


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients get from HubSpot
    server_version = "cloudflare"
    sys_version = ""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class HubSpotSimulator:
    """Configure, :meth:`start` (returns the base URL), use, :meth:`stop`; or ``with``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        portal_id: int = 62515,
        app_id: int = 1160452,
        private_app_tokens: Iterable[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        access_token_ttl: int = 1800,
        rate_limit: int = 190,
        rate_limit_interval: float = 10.0,
        search_rate_limit: int = 4,
        search_rate_interval: float = 1.0,
        daily_limit: int = 500_000,
        rate_limits_enabled: bool = True,
        retry_after_header: bool = False,
        batch_limit: int = 100,
        search_max_limit: int = 200,
        search_cap: int = 10_000,
        search_lag: float = 0.0,
        search_random_ties: bool = False,
        webhook_urls: Iterable[str] = (),
        webhook_mode: str = "auto",
        webhook_batch_size: int = 100,
        webhook_retry_delays: Iterable[float] = (0.05, 0.1, 0.2),
        webhook_duplicates: bool = False,
        webhook_timeout: float = 5.0,
        webhook_batch_window: float = 0.02,
        webhook_properties: dict[str, Iterable[str]] | None = None,
        webhook_subscriptions: Iterable[str] | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.portal_id = portal_id
        self.app_id = app_id
        self.clock = clock or SimClock()
        tokens = list(private_app_tokens) if private_app_tokens is not None else [f"pat-na1-{uuid.uuid4()}"]
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret or str(uuid.uuid4())
        self.schema = Schema(portal_id, self.clock.now_ms())
        self.store = Store(self.schema, self.clock, search_lag)
        self.auth = Auth(
            self.clock,
            self.client_id,
            self.client_secret,
            portal_id,
            app_id,
            access_token_ttl,
            tokens,
        )
        self.rate_limits = RateLimits(
            rate_limits_enabled,
            rate_limit,
            rate_limit_interval,
            search_rate_limit,
            search_rate_interval,
            daily_limit,
            retry_after_header,
        )
        self.faults = Faults()
        self.stats = Stats()
        self.webhooks = Webhooks(
            client_secret=self.client_secret,
            app_id=app_id,
            portal_id=portal_id,
            targets=webhook_urls,
            mode=webhook_mode,
            batch_size=webhook_batch_size,
            retry_delays=webhook_retry_delays,
            duplicates=webhook_duplicates,
            timeout=webhook_timeout,
            batch_window=webhook_batch_window,
            properties=webhook_properties,
            subscriptions=webhook_subscriptions,
        )
        self.store.listeners.append(self.webhooks.on_changes)
        self._stopping = threading.Event()
        self.app = HubSpotApp(
            schema=self.schema,
            store=self.store,
            auth=self.auth,
            rate_limits=self.rate_limits,
            faults=self.faults,
            stats=self.stats,
            limits=Limits(
                batch_limit, 100, SearchLimits(search_max_limit, search_cap, random_ties=search_random_ties)
            ),
            app_id=app_id,
            stopping=self._stopping,
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> str:
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.port
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.02), name="hubspot-sim", daemon=True
        )
        self._thread.start()
        self.webhooks.start()
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()
        self.webhooks.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubSpotSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ----------------------------------------------------------------- auth
    @property
    def token(self) -> str:
        """The first private-app token."""
        return self.auth.private_app_tokens[0]

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def authorize(self, redirect_uri: str | None = None, scopes: Iterable[str] = DEFAULT_SCOPES) -> str:
        """An authorization code, as if a user had consented (exchange it at ``/oauth/v1/token``)."""
        return self.auth.issue_code(redirect_uri, tuple(scopes))

    def expire_tokens(self) -> None:
        """Expire every OAuth access token issued so far."""
        self.auth.expire_access_tokens()

    # ---------------------------------------------------- data ("the UI")
    def create(
        self,
        object_type: str,
        properties: dict[str, Any],
        *,
        at: int | None = None,
        webhooks: bool = True,
    ) -> str:
        """Create a record as a user would in HubSpot; returns its id."""
        with self.store.lock:
            props = self._normalize(object_type, properties)
            record = self.store.create(
                object_type, props, source="CRM_UI", source_id=UI_SOURCE_ID, at=at, notify=webhooks
            )
            return str(record.id)

    def create_many(
        self, object_type: str, rows: Iterable[dict[str, Any]], *, webhooks: bool = False
    ) -> list[str]:
        """Seed many records at once (no webhooks unless asked)."""
        return [self.create(object_type, row, webhooks=webhooks) for row in rows]

    def edit(
        self, object_type: str, object_id: str | int, properties: dict[str, Any], *, at: int | None = None
    ) -> None:
        """Change properties as a user would; ``at`` forces the modification timestamp (ms)."""
        with self.store.lock:
            record = self._record(object_type, object_id)
            props = self._normalize(object_type, properties)
            self.store.update(record, props, source="CRM_UI", source_id=UI_SOURCE_ID, at=at)

    def delete(self, object_type: str, object_id: str | int, *, at: int | None = None) -> None:
        """Archive ("delete") a record as a user would."""
        with self.store.lock:
            self.store.archive(
                self._record(object_type, object_id), source="CRM_UI", source_id=UI_SOURCE_ID, at=at
            )

    def get(self, object_type: str, object_id: str | int, *, archived: bool = False) -> dict[str, Any] | None:
        """A record with every property it has set, or ``None``."""
        with self.store.lock:
            record = self.store.get(object_type, object_id, archived=archived)
            return None if record is None else self.app._written(record)

    def records(self, object_type: str, *, archived: bool = False) -> list[dict[str, Any]]:
        with self.store.lock:
            return [
                self.app._written(r)
                for r in sorted(self.store.records[object_type].values(), key=lambda r: r.id)
                if r.archived == archived
            ]

    def define_property(
        self,
        object_type: str,
        name: str,
        *,
        type: str = "string",
        field_type: str = "text",
        label: str | None = None,
        unique: bool = False,
        options: Iterable[str] = (),
        group: str = "abohub",
    ) -> dict[str, Any]:
        """Add a custom property, as a HubSpot admin would."""
        definition = {
            "name": name,
            "label": label or name,
            "type": type,
            "fieldType": field_type,
            "groupName": group,
            "hasUniqueValue": unique,
            "options": [{"label": o, "value": o} for o in options],
        }
        with self.store.lock:
            return self.schema.create(object_type, definition, self.clock.now_ms())

    def associate(
        self, from_type: str, from_id: str | int, to_type: str, to_id: str | int, type_id: int | None = None
    ) -> None:
        """Associate two records as a user would (the default association unless ``type_id`` is given)."""
        with self.store.lock:
            source, target = self._record(from_type, from_id), self._record(to_type, to_id)
            chosen = type_id if type_id is not None else DEFAULT_TYPES[(from_type, to_type)]
            if not self.store.associations.valid_type(from_type, to_type, chosen):
                raise ValueError(f"no association type {chosen} from {from_type} to {to_type}")
            self.store.associations.add((from_type, source.id), (to_type, target.id), chosen)

    def associations(self, from_type: str, from_id: str | int, to_type: str) -> list[str]:
        """The ids of the ``to_type`` records associated with a record, in id order."""
        with self.store.lock:
            return [str(i) for i, _ in self.store.associations.of((from_type, int(from_id)), to_type)]

    def association_types(self, from_type: str, from_id: str | int, to_type: str) -> dict[str, list[int]]:
        """to id → the association type ids from the record to it (e.g. ``{"1001": [3]}``)."""
        with self.store.lock:
            return {
                str(i): types for i, types in self.store.associations.of((from_type, int(from_id)), to_type)
            }

    # ------------------------------------------------------- observability
    def flush_webhooks(self) -> list[Delivery]:
        """Deliver every queued webhook now, in this thread (retries included)."""
        return self.webhooks.flush()

    def writes(self, object_type: str | None = None, object_id: str | int | None = None) -> int:
        """API writes (create, update, upsert, archive) counted per record, summed as asked."""
        with self.store.lock:
            return sum(
                n
                for (t, i), n in self.store.writes.items()
                if (object_type is None or t == object_type) and (object_id is None or i == str(object_id))
            )

    def association_writes(self, from_type: str | None = None, to_type: str | None = None) -> int:
        """Association inputs the API applied (create, default, archive), summed as asked."""
        with self.store.lock:
            return sum(
                n
                for (f, t), n in self.store.associations.writes.items()
                if (from_type is None or f == from_type) and (to_type is None or t == to_type)
            )

    def reset_stats(self) -> None:
        self.stats.reset()
        with self.store.lock:
            self.store.writes.clear()
            self.store.associations.writes.clear()

    def reset(self) -> None:
        """Back to an empty portal: records, custom properties, stats, faults, limits, webhook logs."""
        with self.store.lock:
            self.store.clear()
            self.schema.properties = Schema(self.portal_id, self.clock.now_ms()).properties
        self.reset_stats()
        self.faults.clear()
        self.rate_limits.reset()
        self.webhooks.reset()

    # ------------------------------------------------------------ internals
    def _normalize(self, object_type: str, properties: dict[str, Any]) -> dict[str, str | None]:
        try:
            return self.schema.normalize(object_type, properties)
        except errors.PropertyErrors as exc:
            raise ValueError(exc.results) from None

    def _record(self, object_type: str, object_id: str | int) -> Any:
        record = self.store.get(object_type, object_id)
        if record is None:
            raise KeyError(f"no live {object_type} record {object_id}")
        return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the HubSpot simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--token", action="append", help="a private-app token to accept (repeatable)")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--app-id", type=int, default=1160452)
    parser.add_argument("--portal-id", type=int, default=62515)
    parser.add_argument(
        "--webhook-url", action="append", default=[], help="where to POST events (repeatable)"
    )
    parser.add_argument("--rate-limit", type=int, default=190, help="requests per 10 s per token")
    parser.add_argument("--no-rate-limit", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="create this many contacts at start")
    args = parser.parse_args(argv)
    sim = HubSpotSimulator(
        host=args.host,
        port=args.port,
        portal_id=args.portal_id,
        app_id=args.app_id,
        private_app_tokens=args.token or [f"pat-na1-{uuid.uuid4()}"],
        client_id=args.client_id,
        client_secret=args.client_secret or secrets.token_hex(16),
        rate_limit=args.rate_limit,
        rate_limits_enabled=not args.no_rate_limit,
        webhook_urls=args.webhook_url,
    )
    for n in range(args.seed):
        sim.create(
            "contacts",
            {"email": f"seed{n}@example.com", "firstname": "Seed", "lastname": str(n)},
            webhooks=False,
        )
    sim.start()
    print(
        json.dumps(
            {
                "base_url": sim.base_url,
                "private_app_token": sim.token,
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
                "app_id": sim.app_id,
                "portal_id": sim.portal_id,
                "webhook_urls": sim.webhooks.targets,
            }
        ),
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
