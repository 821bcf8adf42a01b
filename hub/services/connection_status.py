"""What operators see of connections: installed connectors as forms, connections with their health, a test.

Secrets stay hidden here too: configs are shown through ``connections.redacted`` (``"***"``), and the
message of a failed connection test is scrubbed of every secret value of the connection.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import ValidationError, fields, missing, validate
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from config import Settings
from connectors.base import Connector, ConnectorContext
from connectors.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    MalformedResponse,
    RateLimited,
    RetriableError,
    Scrubber,
)
from connectors.errors import NotFound as VendorNotFound
from connectors.registry import available
from hub.domain.errors import NotFound
from hub.services.connections import HIDDEN, connector_class, open_connector, redacted
from hub.services.crypto import box_for
from hub.services.runtime import Runtime
from hub.services.uow import UnitOfWork
from hub.store.models import Conflict, Connection, DeadLetter, Link, SyncState
from hub.store.models import Mapping as MappingRow

log = logging.getLogger(__name__)


_FIELD_TYPES: list[tuple[type[fields.Field], str]] = [
    (fields.Url, "url"),
    (fields.Email, "email"),
    (fields.String, "string"),
    (fields.Boolean, "boolean"),
    (fields.Integer, "integer"),
    (fields.Number, "number"),
    (fields.DateTime, "datetime"),
    (fields.List, "array"),
    (fields.Dict, "object"),
]


def _config_field(name: str, field_: fields.Field) -> dict[str, Any]:
    """One config field as a form needs it (a secret's default is never shown)."""
    secret = bool(field_.metadata.get("secret"))
    default = field_.load_default
    shown_default = None if secret or default is missing or callable(default) else default
    described: dict[str, Any] = {
        "name": field_.data_key or name,
        "type": next((kind for cls, kind in _FIELD_TYPES if isinstance(field_, cls)), "string"),
        "required": bool(field_.required),
        "secret": secret,
        "nullable": bool(field_.allow_none),
        "default": shown_default,
        "description": field_.metadata.get("description"),
    }
    for rule in field_.validators:
        if isinstance(rule, validate.OneOf):
            described["choices"] = list(rule.choices)
        if isinstance(rule, validate.Range):
            described["minimum"], described["maximum"] = rule.min, rule.max
    return described


def describe_connector(cls: type[Connector]) -> dict[str, Any]:
    """An installed connector: enough for an admin UI to build the connection form."""
    return {
        "name": cls.name,
        "title": cls.title,
        "kind": cls.kind.value,
        "capabilities": sorted(cls.capabilities),
        "object_types": [
            {
                "name": one.name,
                "local": one.local,
                "directions": sorted(d.value for d in one.directions),
                "keys": list(one.keys),
                "batch_size": one.batch_size,
            }
            for one in cls.object_types
        ],
        "config": [_config_field(name, f) for name, f in cls.config_schema().fields.items()],
    }


def installed_connectors() -> list[dict[str, Any]]:
    return [describe_connector(cls) for _name, cls in sorted(available().items())]


@dataclass(frozen=True)
class Health:
    """How a connection is doing, from what the sync engine keeps."""

    linked: int = 0
    last_pushed_at: datetime | None = None
    last_pulled_at: datetime | None = None
    pending: int = 0  # records with changes not pushed yet
    retrying: int = 0  # of those, the ones that failed at least once and wait for a retry
    open_conflicts: int = 0
    open_dead_letters: int = 0


LAST_ERROR_CHARS = 2000


def record_exchange(hub: Runtime, connection_id: str, doing: str, error: Exception | None = None) -> None:
    """What a sync run's exchange with the connection's vendor came to, for the connection's page.

    Success: ``last_synced_at`` is now and ``last_error`` is cleared. A failure of the whole exchange
    (vendor down, credentials refused, rate limit outlasting the retries): ``last_error`` says what was
    being done and what went wrong, until the next success. A record the vendor refuses is not the
    connection's error: it waits in the retries or the dead letters. ``updated_at`` stays as it is (it
    marks changes of config and state; the webhook receiver's cache goes by it).
    """
    if error is None:
        values: dict[str, Any] = {"last_synced_at": hub.clock.now(), "last_error": None}
    else:
        values = {"last_error": f"{doing}: {error}"[:LAST_ERROR_CHARS]}
    with hub.session_factory() as session, session.begin():
        session.execute(update(Connection).where(Connection.id == connection_id).values(**values))


def health_of(session: Session, connection_ids: list[str]) -> dict[str, Health]:
    """The health of several connections in five queries, whatever their number."""
    if not connection_ids:
        return {}
    counts: dict[str, dict[str, Any]] = {cid: {} for cid in connection_ids}
    for cid, linked, pushed, pulled in session.execute(
        select(Link.connection_id, func.count(), func.max(Link.last_pushed_at), func.max(Link.last_pulled_at))
        .where(Link.connection_id.in_(connection_ids))
        .group_by(Link.connection_id)
    ):
        counts[cid].update(linked=linked, last_pushed_at=pushed, last_pulled_at=pulled)
    retrying = func.sum(case((SyncState.attempts > 0, 1), else_=0))
    for cid, pending, failing in session.execute(
        select(SyncState.connection_id, func.count(), retrying)
        .where(SyncState.connection_id.in_(connection_ids))
        .group_by(SyncState.connection_id)
    ):
        counts[cid].update(pending=pending, retrying=int(failing or 0))
    for cid, number in session.execute(
        select(Conflict.connection_id, func.count())
        .where(Conflict.connection_id.in_(connection_ids), Conflict.status == "open")
        .group_by(Conflict.connection_id)
    ):
        counts[cid]["open_conflicts"] = number
    for cid, number in session.execute(
        select(DeadLetter.connection_id, func.count())
        .where(DeadLetter.connection_id.in_(connection_ids), DeadLetter.resolved_at.is_(None))
        .group_by(DeadLetter.connection_id)
    ):
        counts[cid]["open_dead_letters"] = number
    return {cid: Health(**found) for cid, found in counts.items()}


@dataclass(frozen=True)
class ConnectionView:
    """A connection as operators see it: config with secrets shown as "***", mappings, health."""

    id: str
    connector: str
    name: str
    enabled: bool
    config: dict[str, Any]
    object_types: list[str]
    health: Health
    last_synced_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    webhook_path: str


def view_connections(session: Session, settings: Settings, rows: list[Connection]) -> list[ConnectionView]:
    box = box_for(settings)
    ids = [row.id for row in rows]
    health = health_of(session, ids)
    mapped: dict[str, list[str]] = {cid: [] for cid in ids}
    if ids:
        for cid, object_type in session.execute(
            select(MappingRow.connection_id, MappingRow.object_type)
            .where(MappingRow.connection_id.in_(ids))
            .order_by(MappingRow.object_type)
        ):
            mapped[cid].append(object_type)
    installed = available()
    views = []
    for row in rows:
        cls = installed.get(row.connector)
        config = box.decrypt(row.config_encrypted)
        # A connector that was uninstalled still shows, with every value hidden.
        shown = redacted(cls, config) if cls else dict.fromkeys(config, HIDDEN)
        views.append(
            ConnectionView(
                id=row.id,
                connector=row.connector,
                name=row.name,
                enabled=row.enabled,
                config=shown,
                object_types=mapped[row.id],
                health=health[row.id],
                last_synced_at=row.last_synced_at,
                last_error=row.last_error,
                created_at=row.created_at,
                updated_at=row.updated_at,
                webhook_path=f"/webhooks/{row.id}",
            )
        )
    return views


def view_connection(session: Session, settings: Settings, connection_id: str) -> ConnectionView:
    row = session.get(Connection, connection_id)
    if row is None:
        raise NotFound(f"no connection {connection_id}")
    return view_connections(session, settings, [row])[0]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of trying a connection: ok, or what went wrong (secrets scrubbed)."""

    ok: bool
    error_type: str | None = None  # auth, rate_limited, unavailable, not_found, refused, malformed_response…
    message: str | None = None
    status: int | None = None  # the vendor's HTTP status, when it answered
    retriable: bool = False
    duration_ms: int = 0


CHECK_TIMEOUT_SECONDS = 10.0
_ERROR_TYPES: list[tuple[type[Exception], str]] = [
    (RateLimited, "rate_limited"),
    (RetriableError, "unavailable"),
    (AuthError, "auth"),
    (VendorNotFound, "not_found"),
    (FatalError, "refused"),
    (MalformedResponse, "malformed_response"),
    (ConnectorError, "error"),
]


def check_connection(uow: UnitOfWork, connection_id: str) -> CheckResult:
    """Run the connector's own check; any failure is reported, never raised (the vendor may be down)."""
    box = box_for(uow.settings)
    with uow.session_factory() as session:
        row = session.get(Connection, connection_id)
        if row is None:
            raise NotFound(f"no connection {connection_id}")
        secret = connector_class(row.connector).secret_fields()
        secrets = [str(v) for k, v in box.decrypt(row.config_encrypted).items() if k in secret and v]
    scrub = Scrubber(secrets).text
    started = time.monotonic()
    context = ConnectorContext(redis_url=uow.settings.redis_url, timeout_seconds=CHECK_TIMEOUT_SECONDS)

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        open_connector(uow, connection_id, context).check()
    except ConnectorError as error:
        kind = next(name for cls, name in _ERROR_TYPES if isinstance(error, cls))
        return CheckResult(
            False, kind, scrub(str(error)), error.status, isinstance(error, RetriableError), took()
        )
    except ValidationError as error:
        return CheckResult(False, "invalid_config", scrub(f"the stored configuration is refused: {error}"))
    except Exception as error:  # a plug-in's bug must not become a 500 on the operator's screen
        log.exception("connection check of %s failed unexpectedly", connection_id)
        return CheckResult(
            False, "error", f"the connector failed unexpectedly ({type(error).__name__})", duration_ms=took()
        )
    return CheckResult(True, duration_ms=took())
