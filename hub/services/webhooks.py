"""Webhook receipts: verified vendor events stored once, for a job to process later.

One delivery (:meth:`WebhookReceiver.receive`), in this order:

1. The connection's connector is taken from the cache (:class:`ConnectorCache`)
   or opened after reading the connection's row. Unknown, disabled, or of a
   connector without the ``webhooks`` capability:
   :class:`~hub.domain.errors.NotFound`.
2. Its connector verifies the signature and timestamp window over the raw body
   (:meth:`Connector.verify_webhook`). Rejected: :class:`WebhookUnauthorized`,
   nothing written. The window is checked against **wall time** (a
   :class:`SystemClock`), not the hub's clock: the vendor signs with its real
   clock, while the hub's clock is business time that tests and the demo move.
3. The connector parses the events. Rejected: :class:`MalformedWebhook`,
   nothing written.
4. Every event is inserted into ``webhook_receipts`` in ONE multi-row statement
   (SQLAlchemy's insertmanyvalues batching, one statement per 1000 events) with
   ``ON CONFLICT (connection_id, event_id) DO NOTHING``: an event id already
   stored (a duplicate delivery) is skipped. Rows go in sorted by event id (a
   consistent lock order for concurrent deliveries), so the processing job
   should order a connection's receipts by ``payload.occurred_at``, not by
   ``id``.
5. Once they are committed, the connection's processing job is asked for
   through ``queue_processing``, a callable the caller gives (the HTTP edge's
   :mod:`hub.webhooks.processing`: services do not import ``jobs``); also
   when every event was a duplicate, so that a vendor's retry repairs an
   enqueue that failed. The :class:`Receipt` says how many events were new,
   how many were duplicates, and whether the job was queued. Receipts with
   ``processed_at IS NULL`` are the durable truth of what is left to do.

No vendor call is made here: the connector is used only to verify and parse.

**One statement per delivery.** Opening a connector decrypts the connection's
config, so :class:`ConnectorCache` keeps each opened connector for a short
time (60 s by default) with the state of the connection it was opened with:
``updated_at`` (bumped by every config, enabled or credential change) and the
encrypted config (a new Fernet token at every re-encryption, which also
catches a change made under a clock that did not move). A delivery whose
connector is cached is verified and parsed with it without reading the row;
the INSERT itself confirms the connection is still enabled and in that state
(its ``connection_id`` is a subquery that finds no row otherwise, and the NOT
NULL column refuses the receipts). Anything else (nothing cached, a rejection,
a connection changed, a delivery without events) is decided again on the
row, read first. On PostgreSQL the statements run without a transaction (each
commits on its own; BEGIN and COMMIT would be two more round trips): the read
only reads, and a delivery of over 1000 events that fails half-way is
completed by the vendor's retry. A steady stream of webhooks thus costs one
statement each, and decrypts a connection's config about once a minute per
process.

**One statement for many.** Deliveries that reach one process at the same
moment share that statement (:class:`~hub.services.grouping.GroupedCalls`, a
group commit): while one INSERT runs, the deliveries verified meanwhile wait
for the next, which carries all their rows (up to :data:`GROUP_ROWS`, each row
with its own connection guard) and tells each delivery what of its own was
new. An event two of them carry counts for the first. Should one connection
of the group have changed (its guard refuses the statement, which then stores
nothing), each delivery of the group is inserted on its own, so that only that
connection's deliveries are refused. The group's processing jobs are then
asked for once per connection, by the same thread. A lone delivery never
waits for company.

What a receipt's ``payload`` holds (what the processing job reads)::

    {"event_id": "…", "object_type": "contacts", "remote_id": "…",
     "action": "created" | "updated" | "deleted", "occurred_at": ISO 8601 or null,
     "properties": {…partial…}, "raw": the vendor's own JSON for this event, or null}

``raw`` is the event's element of a JSON-array body (when the connector parsed
one event per element) or the whole JSON-object body of a one-event delivery.
``received_at`` is the hub's clock, like every other row the jobs compare.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, Insert, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from config import Settings
from connectors.base import Connector, ConnectorContext, WebhookEvent, WebhookRejected
from hub.domain.errors import AbohubError, InvalidRequest, NotFound
from hub.services.clock import Clock, SystemClock
from hub.services.connections import connector_class
from hub.services.crypto import SecretsUnavailable, box_for
from hub.services.grouping import GroupedCalls
from hub.store.db import autocommit_options
from hub.store.models import Connection, WebhookReceipt

log = logging.getLogger(__name__)

MAX_EVENT_ID = 200  # the width of webhook_receipts.event_id
CACHE_TTL_SECONDS = 60.0
CACHE_MAX_ENTRIES = 1024
GROUP_ROWS = 1000  # receipts per statement when deliveries share one (SQLAlchemy's insertmanyvalues page)


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
    # After the events were stored: True, the processing job was queued; False, one was waiting already
    # (or the delivery had no events); None, it could not be queued (the error is logged).
    queued: bool | None = False


class HubLike(Protocol):
    """What this module needs of :class:`hub.bootstrap.Hub` (services sit below the composition root)."""

    settings: Settings
    engine: Engine
    clock: Clock


@dataclass(frozen=True)
class ConnectionState:
    """What a delivery reads of its connection (one row, no ORM object: this is the hot path)."""

    id: str
    connector: str
    enabled: bool
    updated_at: datetime
    config_encrypted: str


_CONNECTION_STATE = select(
    Connection.id,
    Connection.connector,
    Connection.enabled,
    Connection.updated_at,
    Connection.config_encrypted,
).where(Connection.id == bindparam("connection_id"))


# The connection id the receipts get: the connection's, only while it is enabled and as it was when its
# connector was opened (else NULL, which the NOT NULL column refuses). So the receipts and the check that
# the (cached) connector may still take them are one statement.
_CONFIRMED_CONNECTION_ID = (
    select(Connection.id)
    .where(
        Connection.id == bindparam("guard_id"),
        Connection.enabled.is_(True),
        Connection.updated_at == bindparam("guard_updated_at"),
        Connection.config_encrypted == bindparam("guard_config"),
    )
    .scalar_subquery()
)


def _insert_receipts(dialect: str) -> Insert:
    """Insert what is new, skip what is stored, return the ids inserted."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = WebhookReceipt.__table__
    return (
        insert(table)
        .values(connection_id=_CONFIRMED_CONNECTION_ID)
        .on_conflict_do_nothing(index_elements=["connection_id", "event_id"])
        .returning(table.c.connection_id, table.c.event_id)
    )


class _Unconfirmed(Exception):
    """The connection is not (or no longer) as the connector was opened with: nothing was stored."""


_Delivery = tuple[ConnectionState, list[dict[str, Any]]]  # a delivery's connection and receipt rows
_Stored = tuple[int, bool | None]  # receipts inserted, and Receipt.queued

_INSERT_RECEIPTS = {dialect: _insert_receipts(dialect) for dialect in ("postgresql", "sqlite")}


@dataclass(frozen=True)
class Opened:
    """A connection's connector and the state of the connection it was opened with."""

    connection: ConnectionState
    connector: Connector


@dataclass
class _Cached:
    opened: Opened
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

    def peek(self, connection_id: str) -> Opened | None:
        """The connector opened last for this connection, if still fresh; the connection may have
        changed since (the caller must confirm it has not)."""
        now = self.monotonic()
        with self._lock:
            entry = self._entries.get(connection_id)
            return entry.opened if entry is not None and now < entry.expires else None

    def get(self, connection: ConnectionState, open_connector: Callable[[], Connector]) -> Connector:
        now = self.monotonic()
        with self._lock:
            entry = self._entries.get(connection.id)
            if entry is not None and now < entry.expires and _same(entry.opened.connection, connection):
                self._entries.move_to_end(connection.id)
                return entry.opened.connector
        connector = open_connector()  # outside the lock: decrypting must not serialise other connections
        with self._lock:
            self.opened += 1
            self._entries[connection.id] = _Cached(Opened(connection, connector), now + self.ttl_seconds)
            self._entries.move_to_end(connection.id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return connector

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _same(opened_with: ConnectionState, now: ConnectionState) -> bool:
    """Whether a connector opened with one state of a connection is good for another."""
    return (
        opened_with.updated_at == now.updated_at
        and opened_with.config_encrypted == now.config_encrypted
        and opened_with.connector == now.connector
    )


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
        queue_processing: Callable[[str], bool] | None = None,
    ) -> None:
        self.hub = hub
        self.queue_processing = queue_processing
        self.wall_clock = wall_clock or SystemClock()
        self.cache = cache or ConnectorCache()
        # Statements commit one by one on PostgreSQL (see the module doc, "One statement per delivery").
        self.database = hub.engine.execution_options(**autocommit_options(hub.engine))
        self._writes: GroupedCalls[None, _Delivery, _Stored] = GroupedCalls(self._store_group)

    def waiting(self) -> int:
        """Deliveries verified and waiting for the next group to store them (one not started yet)."""
        return self._writes.waiting(None)

    def _open(self, connection: ConnectionState) -> Connector:
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
        cached = self.cache.peek(connection_id)
        if cached is not None:
            try:
                return self._store(cached, method, url, headers, body, confirmed=False)
            except (AbohubError, _Unconfirmed):
                pass  # perhaps only because the connection changed: decided on its current row below
        with self.database.begin() as db:
            row = db.execute(_CONNECTION_STATE, {"connection_id": connection_id}).first()
        connection = ConnectionState(*row) if row is not None else None
        if connection is None or not connection.enabled:
            raise NotFound(f"no connection {connection_id} takes webhooks")
        connector = self.cache.get(connection, lambda: self._open(connection))
        try:
            return self._store(Opened(connection, connector), method, url, headers, body, confirmed=True)
        except _Unconfirmed:
            raise WebhookUnavailable("the connection changed while the delivery was stored; retry") from None

    def _store(
        self,
        opened: Opened,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        confirmed: bool,
    ) -> Receipt:
        """Verify, parse and insert, if the connection is still as ``opened`` has it (else
        :class:`_Unconfirmed`); ``confirmed``: it was just read, so a delivery of no events needs no check."""
        connection, connector = opened.connection, opened.connector
        if "webhooks" not in type(connector).capabilities:
            raise NotFound(f"no connection {connection.id} takes webhooks")
        try:
            connector.verify_webhook(method, url, headers, body, self.wall_clock.now())
        except WebhookRejected as exc:
            raise WebhookUnauthorized(str(exc)) from None
        try:
            events = connector.parse_webhook(body)
        except WebhookRejected as exc:
            raise MalformedWebhook(str(exc)) from None
        rows = self._rows(events, body, self.hub.clock.now())
        if not rows and not confirmed:
            raise _Unconfirmed
        stored, queued = self._insert(connection, rows)
        return Receipt(connection.id, len(events), stored, len(events) - stored, queued)

    def _rows(self, events: Sequence[WebhookEvent], body: bytes, now: datetime) -> list[dict[str, Any]]:
        raws = _raw_events(body, len(events))
        rows: dict[str, dict[str, Any]] = {}
        for index, event in enumerate(events):
            if not event.event_id or len(event.event_id) > MAX_EVENT_ID:
                raise MalformedWebhook(f"an event id must be 1 to {MAX_EVENT_ID} characters")
            rows.setdefault(
                event.event_id,
                {
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

    def _insert(self, connection: ConnectionState, rows: list[dict[str, Any]]) -> _Stored:
        """Insert what is new, skip what is stored, then ask for the processing job: how many rows
        were inserted and :attr:`Receipt.queued`.

        :class:`_Unconfirmed` when the connection is no longer as given (nothing is inserted then).
        Concurrent deliveries in this process share the work (see "One statement for many").
        """
        if not rows:
            return 0, False
        return self._writes.call(None, (connection, rows))

    def _store_group(self, _key: None, deliveries: list[_Delivery]) -> list[_Stored | BaseException]:
        """Insert the rows of concurrent deliveries (one statement per :data:`GROUP_ROWS` rows), then
        queue the processing of each connection that had a delivery stored, once."""
        inserted: list[int | BaseException] = []
        chunk: list[_Delivery] = []
        chunk_rows = 0
        for delivery in deliveries:
            if chunk and chunk_rows + len(delivery[1]) > GROUP_ROWS:
                inserted.extend(self._insert_chunk(chunk))
                chunk, chunk_rows = [], 0
            chunk.append(delivery)
            chunk_rows += len(delivery[1])
        inserted.extend(self._insert_chunk(chunk))
        stored = {
            connection.id
            for (connection, _), result in zip(deliveries, inserted, strict=True)
            if not isinstance(result, BaseException)
        }
        queued = {connection_id: self._queue(connection_id) for connection_id in sorted(stored)}
        return [
            result if isinstance(result, BaseException) else (result, queued[connection.id])
            for (connection, _), result in zip(deliveries, inserted, strict=True)
        ]

    def _queue(self, connection_id: str) -> bool | None:
        """Ask for the connection's processing job (after its events were committed)."""
        if self.queue_processing is None:
            return False
        try:
            return self.queue_processing(connection_id)
        except Exception:
            log.exception("webhook connection=%s stored; its processing job was not queued", connection_id)
            return None

    def _insert_chunk(self, deliveries: list[_Delivery]) -> list[int | BaseException]:
        if len(deliveries) > 1:
            # Refused when one connection changed: then each delivery on its own, so only its own fail.
            with contextlib.suppress(_Unconfirmed):
                return self._insert_deliveries(deliveries)
        results: list[int | BaseException] = []
        for delivery in deliveries:
            try:
                results.extend(self._insert_deliveries([delivery]))
            except Exception as exc:
                results.append(exc)
        return results

    def _insert_deliveries(self, deliveries: list[_Delivery]) -> list[int]:
        """One statement for the deliveries' rows; how many of each delivery's were new.

        :class:`_Unconfirmed` when a connection is no longer as given (nothing is inserted then).
        """
        owners: dict[tuple[str, str], int] = {}  # (connection, event) → the delivery whose row it is
        parameters = []
        for index, (connection, rows) in enumerate(deliveries):
            guard = _guard(connection)
            for row in rows:
                if owners.setdefault((connection.id, row["event_id"]), index) == index:
                    parameters.append({**row, **guard})
        parameters.sort(key=lambda row: (row["guard_id"], row["event_id"]))  # one lock order (see _rows)
        with self.database.begin() as db:
            try:
                # One cached statement run "executemany" style: SQLAlchemy batches it into multi-row
                # INSERT … VALUES … RETURNING statements (insertmanyvalues), not a round trip per row.
                # The usual delivery of one event skips that batching machinery.
                inserted = db.execute(
                    _INSERT_RECEIPTS[db.dialect.name], parameters[0] if len(parameters) == 1 else parameters
                ).all()
            except IntegrityError:
                raise _Unconfirmed from None  # a guard gave no connection id: NOT NULL refused the rows
        stored = [0] * len(deliveries)
        for connection_id, event_id in inserted:
            stored[owners[connection_id, event_id]] += 1
        return stored


def _guard(connection: ConnectionState) -> dict[str, Any]:
    return {
        "guard_id": connection.id,
        "guard_updated_at": connection.updated_at,
        "guard_config": connection.config_encrypted,
    }
