"""Connections: configured instances of connectors, their config encrypted at rest.

Secret fields (marked ``metadata={"secret": True}`` in the connector's config
schema) never leave this module in clear text except to the connector itself:
events and API responses show ``"***"`` in their place, and an update that
leaves a secret field out keeps the stored value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import delete, select

from connectors.base import Connector, ConnectorContext
from connectors.registry import UnknownConnector, load
from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.domain.ids import new_id
from hub.services.crypto import box_for
from hub.services.uow import UnitOfWork
from hub.store.models import Conflict, Connection, DeadLetter, Link, SyncCursor, SyncState, WebhookReceipt
from hub.store.models import Mapping as MappingRow
from mappings import Mapping as MappingDefinition

HIDDEN = "***"


@dataclass(frozen=True)
class CreateConnection:
    connector: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateConnection:
    connection_id: str
    name: str | None = None
    config: dict[str, Any] | None = None  # secret fields left out (or sent as "***") keep their stored value
    enabled: bool | None = None
    merge: bool = False  # True: every config field left out keeps its stored value, not only secrets


def connector_class(name: str) -> type[Connector]:
    try:
        return load(name)
    except UnknownConnector as exc:
        raise InvalidRequest(str(exc), fields={"connector": [str(exc)]}) from None


def _validated(cls: type[Connector], config: dict[str, Any]) -> dict[str, Any]:
    try:
        return cls.config_schema().load(config)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise InvalidRequest(
            "the connection's configuration is not valid",
            fields={f"config.{name}": list(problems) for name, problems in messages.items()},
        ) from None


def redacted(cls: type[Connector], config: dict[str, Any]) -> dict[str, Any]:
    secret = cls.secret_fields()
    return {name: HIDDEN if name in secret and value else value for name, value in config.items()}


def create_connection(cmd: CreateConnection, uow: UnitOfWork) -> Connection:
    cls = connector_class(cmd.connector)
    config = _validated(cls, cmd.config)
    box = box_for(uow.settings)
    with uow:
        connection = Connection(
            id=new_id("con"),
            connector=cls.name,
            name=cmd.name,
            enabled=True,
            config_encrypted=box.encrypt(config),
            created_at=uow.now,
            updated_at=uow.now,
        )
        uow.session.add(connection)
        for definition in cls.default_mappings():
            checked = MappingDefinition.load(definition).dump()  # a shipped mapping must be valid too
            uow.session.add(
                MappingRow(
                    id=new_id("map"),
                    connection_id=connection.id,
                    object_type=checked["object_type"],
                    definition=checked,
                    created_at=uow.now,
                    updated_at=uow.now,
                )
            )
        uow.record(
            "connection.created",
            "connection",
            connection.id,
            data={"connector": cls.name, "name": cmd.name, "config": redacted(cls, config)},
        )
        uow.commit()
        return connection


def update_connection(cmd: UpdateConnection, uow: UnitOfWork) -> Connection:
    box = box_for(uow.settings)
    with uow:
        connection = uow.session.get(Connection, cmd.connection_id, with_for_update=True)
        if connection is None:
            raise NotFound(f"no connection {cmd.connection_id}")
        cls = connector_class(connection.connector)
        before = {"name": connection.name, "enabled": connection.enabled}
        changes: dict[str, Any] = {}
        if cmd.config is not None:
            stored = box.decrypt(connection.config_encrypted)
            given = {k: v for k, v in cmd.config.items() if not (k in cls.secret_fields() and v == HIDDEN)}
            keep = set(stored) if cmd.merge else cls.secret_fields()
            kept = {name: stored[name] for name in keep if name in stored and name not in given}
            config = _validated(cls, {**given, **kept})
            connection.config_encrypted = box.encrypt(config)
            before["config"] = redacted(cls, stored)
            changes["config"] = redacted(cls, config)
        if cmd.name is not None:
            connection.name = cmd.name
        if cmd.enabled is not None:
            connection.enabled = cmd.enabled
        connection.updated_at = uow.now
        after = {"name": connection.name, "enabled": connection.enabled}
        uow.record(
            "connection.updated",
            "connection",
            connection.id,
            data={"before": before, "after": {**after, **changes}},
        )
        uow.commit()
        return connection


def save_credentials(uow: UnitOfWork, connection_id: str, updates: dict[str, Any]) -> None:
    """Store credentials a connector refreshed (e.g. a rotated OAuth refresh token)."""
    box = box_for(uow.settings)
    with uow:
        connection = uow.session.get(Connection, connection_id, with_for_update=True)
        if connection is None:
            raise NotFound(f"no connection {connection_id}")
        connection.config_encrypted = box.encrypt({**box.decrypt(connection.config_encrypted), **updates})
        connection.updated_at = uow.now
        uow.record(
            "connection.credentials_refreshed", "connection", connection.id, data={"fields": sorted(updates)}
        )
        uow.commit()


def open_connector(uow: UnitOfWork, connection_id: str, context: ConnectorContext | None = None) -> Connector:
    """The connector of a connection, configured with its decrypted config."""
    box = box_for(uow.settings)
    with uow:
        connection = uow.session.get(Connection, connection_id)
        if connection is None:
            raise NotFound(f"no connection {connection_id}")
        cls = connector_class(connection.connector)
        config = box.decrypt(connection.config_encrypted)
    context = context or ConnectorContext(
        redis_url=uow.settings.redis_url, timeout_seconds=uow.settings.connector_timeout_seconds
    )
    if context.save_credentials is None:
        context.save_credentials = lambda updates: save_credentials(uow, connection_id, updates)
    return cls(config, context)


def rotate_keys(uow: UnitOfWork) -> int:
    """Re-encrypt every stored secret with the newest key; returns how many were rewritten."""
    box = box_for(uow.settings)
    with uow:
        connections = list(uow.session.scalars(select(Connection).with_for_update()))
        for connection in connections:
            connection.config_encrypted = box.rotate(connection.config_encrypted)
        uow.record("encryption_keys.rotated", "connection", "all", data={"connections": len(connections)})
        uow.commit()
        return len(connections)


def delete_connection(uow: UnitOfWork, connection_id: str) -> None:
    """Forget a disabled connection and everything the sync engine kept for it (audited)."""
    with uow:
        connection = uow.session.get(Connection, connection_id, with_for_update=True)
        if connection is None:
            raise NotFound(f"no connection {connection_id}")
        if connection.enabled:
            raise StateConflict("disable the connection before deleting it")
        removed = {}
        for model in (Link, SyncState, SyncCursor, Conflict, DeadLetter, WebhookReceipt, MappingRow):
            result = uow.session.execute(delete(model).where(model.connection_id == connection_id))
            removed[model.__tablename__] = result.rowcount
        uow.session.delete(connection)
        uow.record(
            "connection.deleted",
            "connection",
            connection_id,
            data={"connector": connection.connector, "name": connection.name, "removed": removed},
        )
        uow.commit()
