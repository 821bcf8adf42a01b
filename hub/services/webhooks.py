"""Webhook receipts: verified vendor events stored once, for a job to process later.

One delivery (:meth:`WebhookReceiver.receive`), in this order:

1. The connection is looked up (one query) and its connector taken from the
   cache (or opened). Unknown, disabled, or of a connector without the
   ``webhooks`` capability: :class:`~hub.domain.errors.NotFound`.
2. Its connector verifies the signature and timestamp window over the raw body
   (:meth:`Connector.verify_webhook`). Rejected: :class:`WebhookUnauthorized`,
   nothing written. The window is checked against **wall time** (a
   :class:`SystemClock`), not the hub's clock: the vendor signs with its real
   clock, while the hub's clock is business time that tests and the demo move.
3. The connector parses the events. Rejected: :class:`MalformedWebhook`,
   nothing written.
4. Every event is inserted into ``webhook_receipts`` in ONE multi-row statement
   (SQLAlchemy's insertmanyvalues batching) with ``ON CONFLICT (connection_id,
   event_id) DO NOTHING``, in one transaction: an event id already stored (a
   duplicate delivery) is skipped; whatever the number of events, the cost is
   the same few statements. Rows go in sorted by event id (a consistent lock
   order for concurrent deliveries), so the processing job should order a
   connection's receipts by ``payload.occurred_at``, not by ``id``.
5. The :class:`Receipt` says how many events were new and how many were
   duplicates. Queueing their processing is the caller's part (the HTTP edge,
   :mod:`hub.webhooks.processing`): services do not import ``jobs``. Receipts
   with ``processed_at IS NULL`` are the durable truth of what is left to do.

No vendor call is made here: the connector is used only to verify and parse.

Opening a connector decrypts the connection's config. :class:`ConnectorCache`
keeps each opened connector for a short time (60 s by default) and only while
the connection's ``updated_at`` (bumped by every config, enabled or credential
change) and its encrypted config (a new Fernet token at every re-encryption,
which also catches a change made under a clock that did not move) are the ones
it was opened with. The row is read on every request anyway (to see
``enabled``), so a steady stream of webhooks decrypts a connection's config
about once a minute per process, not once per request.

What a receipt's ``payload`` holds (what the processing job reads)::

    {"event_id": "…", "object_type": "contacts", "remote_id": "…",
     "action": "created" | "updated" | "deleted", "occurred_at": ISO 8601 or null,
     "properties": {…partial…}, "raw": the vendor's own JSON for this event, or null}

``raw`` is the event's element of a JSON-array body (when the connector parsed
one event per element) or the whole JSON-object body of a one-event delivery.
``received_at`` is the hub's clock, like every other row the jobs compare.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from connectors.base import Connector, ConnectorContext, WebhookEvent, WebhookRejected
from hub.domain.errors import AbohubError, InvalidRequest, NotFound
from hub.services.clock import Clock, SystemClock
from hub.services.connections import connector_class
from hub.services.crypto import SecretsUnavailable, box_for
from hub.services.uow import UnitOfWork
from hub.store.models import Connection, WebhookReceipt

log = logging.getLogger(__name__)

MAX_EVENT_ID = 200  # the width of webhook_receipts.event_id
CACHE_TTL_SECONDS = 60.0
CACHE_MAX_ENTRIES = 1024


class WebhookUnauthorized(AbohubError):
    """The signature or timestamp is not acceptable: answer 401, store nothing."""

    code = "unauthorized"


class MalformedWebhook(AbohubError):
    """Authentic, but the body is not what the connector expects: answer 400, store nothing."""

    code = "bad_request"


class WebhookUnavailable(AbohubError):
    """The hub cannot take the delivery now (keys missing, connector not installed): 503."""

    code = "unavailable"


@dataclass(frozen=True)
class Receipt:
    """What one delivery did."""

    connection_id: str
    events: int  # events in the delivery
    stored: int  # new receipts
    duplicates: int  # events already stored (or repeated within the delivery)


class HubLike(Protocol):
    """What this module needs of :class:`hub.bootstrap.Hub` (services sit below the composition root)."""

    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock

    def uow(self, actor: str = ...) -> UnitOfWork: ...


@dataclass
class _Cached:
    connector: Connector
    connector_name: str
    updated_at: datetime
    config_encrypted: str
    expires: float


class ConnectorCache:
    """Opened connectors by connection id, reused briefly while the connection is unchanged."""

    def __init__(
        self,
        ttl_seconds: float = CACHE_TTL_SECONDS,
        max_entries: int = CACHE_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.monotonic = monotonic
        self.opened = 0  # configs decrypted so far
        self._entries: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, connection: Connection, open_connector: Callable[[], Connector]) -> Connector:
        now = self.monotonic()
        with self._lock:
            entry = self._entries.get(connection.id)
            if (
                entry is not None
                and entry.updated_at == connection.updated_at
                and entry.config_encrypted == connection.config_encrypted
                and entry.connector_name == connection.connector
                and now < entry.expires
            ):
                self._entries.move_to_end(connection.id)
                return entry.connector
        connector = open_connector()  # outside the lock: decrypting must not serialise other connections
        with self._lock:
            self.opened += 1
            self._entries[connection.id] = _Cached(
                connector,
                connection.connector,
                connection.updated_at,
                connection.config_encrypted,
                now + self.ttl_seconds,
            )
            self._entries.move_to_end(connection.id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return connector

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _raw_events(body: bytes, count: int) -> list[Any] | None:
    """The vendor's own JSON of each event, when it can be matched to the parsed events."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if isinstance(document, list) and len(document) == count:
        return document
    if isinstance(document, dict) and count == 1:
        return [document]
    return None


def _payload(event: WebhookEvent, raw: Any) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "object_type": event.object_type,
        "remote_id": event.remote_id,
        "action": event.action,
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "properties": event.properties,
        "raw": raw,
    }


class WebhookReceiver:
    """Verifies and stores webhook deliveries; one per app (it holds the connector cache)."""

    def __init__(
        self,
        hub: HubLike,
        *,
        wall_clock: Clock | None = None,
        cache: ConnectorCache | None = None,
    ) -> None:
        self.hub = hub
        self.wall_clock = wall_clock or SystemClock()
        self.cache = cache or ConnectorCache()

    def _open(self, connection: Connection) -> Connector:
        """The connection's connector, for verifying and parsing only (it makes no vendor calls)."""
        try:
            cls = connector_class(connection.connector)
            config = box_for(self.hub.settings).decrypt(connection.config_encrypted)
        except (InvalidRequest, SecretsUnavailable) as exc:
            log.error("webhook connection=%s cannot be opened: %s", connection.id, exc)
            raise WebhookUnavailable("the connection cannot take webhooks right now; retry later") from None
        return cls(config, ConnectorContext(redis_url=self.hub.settings.redis_url))

    def receive(
        self, connection_id: str, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Receipt:
        """Verify, parse and store one delivery (the caller queues its processing). See the module doc."""
        if len(connection_id) > 40:
            raise NotFound(f"no connection {connection_id[:40]}…")
        uow = self.hub.uow("webhook")
        with uow:
            connection = uow.session.get(Connection, connection_id)
            if connection is None or not connection.enabled:
                raise NotFound(f"no connection {connection_id} takes webhooks")
            connector = self.cache.get(connection, lambda: self._open(connection))
            if "webhooks" not in type(connector).capabilities:
                raise NotFound(f"no connection {connection_id} takes webhooks")
            try:
                connector.verify_webhook(method, url, headers, body, self.wall_clock.now())
            except WebhookRejected as exc:
                raise WebhookUnauthorized(str(exc)) from None
            try:
                events = connector.parse_webhook(body)
            except WebhookRejected as exc:
                raise MalformedWebhook(str(exc)) from None
            rows = self._rows(connection_id, events, body, uow.now)
            stored = self._insert(uow, rows)
            uow.commit()
        return Receipt(connection_id, len(events), stored, len(events) - stored)

    def _rows(
        self, connection_id: str, events: Sequence[WebhookEvent], body: bytes, now: datetime
    ) -> list[dict[str, Any]]:
        raws = _raw_events(body, len(events))
        rows: dict[str, dict[str, Any]] = {}
        for index, event in enumerate(events):
            if not event.event_id or len(event.event_id) > MAX_EVENT_ID:
                raise MalformedWebhook(f"an event id must be 1 to {MAX_EVENT_ID} characters")
            rows.setdefault(
                event.event_id,
                {
                    "connection_id": connection_id,
                    "event_id": event.event_id,
                    "payload": _payload(event, raws[index] if raws is not None else None),
                    "received_at": now,
                    "processed_at": None,
                    "error": None,
                },
            )
        # Sorted, so that concurrent deliveries of overlapping events lock the same keys in the same
        # order (PostgreSQL would otherwise deadlock two inserts waiting on each other's rows).
        return [rows[event_id] for event_id in sorted(rows)]

    @staticmethod
    def _insert(uow: UnitOfWork, rows: list[dict[str, Any]]) -> int:
        """Insert what is new, skip what is stored; returns how many rows were inserted."""
        if not rows:
            return 0
        connection = uow.session.connection()
        insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        # One cached statement run "executemany" style: SQLAlchemy batches it into multi-row
        # INSERT … VALUES … RETURNING statements (insertmanyvalues), not one round trip per row.
        statement = (
            insert(WebhookReceipt.__table__)
            .on_conflict_do_nothing(index_elements=["connection_id", "event_id"])
            .returning(WebhookReceipt.__table__.c.id)
        )
        return len(connection.execute(statement, rows).all())
