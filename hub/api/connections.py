"""/api/v1/connectors and /api/v1/connections: installed connectors, configured connections, their health."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validates_schema
from sqlalchemy import select

from hub.api.context import hub, uow
from hub.api.fields import Text, Timestamp
from hub.api.pagination import page
from hub.api.schemas import EmptySchema, PageArgs, Strict, page_of
from hub.services import connection_status, connections
from hub.services.connection_status import CheckResult, ConnectionView
from hub.store.models import Connection

blp = Blueprint(
    "connections",
    __name__,
    url_prefix="/api/v1",
    description="Connectors and connections: configured instances of a connector, secrets never shown",
)


# --- schemas ----------------------------------------------------------------------------------------------


class ConfigFieldSchema(Schema):
    name = fields.String()
    type = fields.String(metadata={"description": "string, url, email, integer, number, boolean, …"})
    required = fields.Boolean()
    secret = fields.Boolean(metadata={"description": "Stored encrypted; always shown as ***"})
    nullable = fields.Boolean()
    default = fields.Raw(allow_none=True)
    description = fields.String(allow_none=True)
    choices = fields.List(fields.Raw())
    minimum = fields.Raw(allow_none=True)
    maximum = fields.Raw(allow_none=True)


class ObjectTypeSchema(Schema):
    name = fields.String(metadata={"description": "The vendor's object, e.g. contacts"})
    local = fields.String(metadata={"description": "The hub's object type it syncs with, e.g. customer"})
    directions = fields.List(fields.String(), metadata={"description": "push, pull and/or both"})
    keys = fields.List(fields.String())
    batch_size = fields.Integer()


class ConnectorSchema(Schema):
    name = fields.String()
    title = fields.String()
    kind = fields.String(metadata={"description": "crm, accounting or payments"})
    capabilities = fields.List(fields.String())
    object_types = fields.List(fields.Nested(ObjectTypeSchema))
    config = fields.List(fields.Nested(ConfigFieldSchema))


class ConnectorList(Schema):
    data = fields.List(fields.Nested(ConnectorSchema), required=True)


class HealthSchema(Schema):
    linked = fields.Integer(metadata={"description": "Records linked to a remote record"})
    last_pushed_at = Timestamp(allow_none=True)
    last_pulled_at = Timestamp(allow_none=True)
    pending = fields.Integer(metadata={"description": "Records with changes not pushed yet"})
    retrying = fields.Integer(metadata={"description": "Pending records waiting to retry after a failure"})
    open_conflicts = fields.Integer()
    open_dead_letters = fields.Integer()


class ConnectionSchema(Schema):
    id = fields.String()
    connector = fields.String()
    name = fields.String()
    enabled = fields.Boolean()
    config = fields.Dict(metadata={"description": 'The configuration; secret fields show "***"'})
    object_types = fields.List(fields.String(), metadata={"description": "Local object types with a mapping"})
    webhook_url = fields.String(metadata={"description": "Where the vendor sends its webhooks"})
    health = fields.Nested(HealthSchema)
    last_synced_at = Timestamp(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


_CONFIG = {
    "description": "The connector's configuration (see GET /connectors); validated by the connector",
    "example": {"access_token": "pat-…", "client_secret": "…"},
}


class CreateConnectionSchema(Strict):
    connector = Text(64, min_length=1, required=True, metadata={"example": "hubspot"})
    name = Text(200, min_length=1, required=True)
    config = fields.Dict(keys=Text(64, min_length=1), values=fields.Raw(allow_none=True), metadata=_CONFIG)


class UpdateConnectionSchema(Strict):
    name = Text(200, min_length=1)
    enabled = fields.Boolean()
    config = fields.Dict(
        keys=Text(64, min_length=1),
        values=fields.Raw(allow_none=True),
        metadata={
            "description": 'Only the fields to change: every field left out (or a secret sent as "***") '
            "keeps its stored value"
        },
    )

    @validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: object) -> None:
        if not data:
            raise ValidationError("give at least one of name, enabled, config", field_name="_schema")


class CheckSchema(Schema):
    ok = fields.Boolean(required=True)
    error_type = fields.String(
        allow_none=True,
        metadata={
            "description": "auth, rate_limited, unavailable, not_found, refused, malformed_response, "
            "invalid_config or error"
        },
    )
    message = fields.String(allow_none=True, metadata={"description": "What went wrong, secrets scrubbed"})
    vendor_status = fields.Integer(attribute="status", allow_none=True)
    retriable = fields.Boolean(metadata={"description": "true: the vendor may answer later (down, 429)"})
    duration_ms = fields.Integer()


# --- views ------------------------------------------------------------------------------------------------


def shown(view: ConnectionView) -> dict[str, Any]:
    return {**asdict(view), "webhook_url": url_for("webhooks.receive", connection_id=view.id, _external=True)}


def one(connection_id: str) -> dict[str, Any]:
    with hub().session_factory() as session:
        return shown(connection_status.view_connection(session, hub().settings, connection_id))


@blp.route("/connectors")
@blp.response(200, ConnectorList)
def list_connectors() -> dict[str, Any]:
    """Installed connectors: kind, object types and directions, capabilities, the config form's fields"""
    return {"data": connection_status.installed_connectors()}


@blp.route("/connections")
class Connections(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_of(ConnectionSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Connections, newest first, with their health and webhook URL"""
        with hub().session_factory() as session:
            found = page(session, select(Connection), Connection.id, args)
            views = connection_status.view_connections(session, hub().settings, found["data"])
            return {**found, "data": [shown(view) for view in views]}

    @blp.arguments(CreateConnectionSchema)
    @blp.response(201, ConnectionSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Configure a connection (the config is validated by the connector and stored encrypted)"""
        created = connections.create_connection(
            connections.CreateConnection(data["connector"], data["name"], data.get("config") or {}), uow()
        )
        return one(created.id)


@blp.route("/connections/<connection_id>")
class ConnectionById(MethodView):
    @blp.response(200, ConnectionSchema)
    def get(self, connection_id: str) -> dict[str, Any]:
        """One connection with its health"""
        return one(connection_id)

    @blp.arguments(UpdateConnectionSchema)
    @blp.response(200, ConnectionSchema)
    def patch(self, data: dict[str, Any], connection_id: str) -> dict[str, Any]:
        """Rename, enable or disable, or change config fields (the others keep their values)"""
        connections.update_connection(
            connections.UpdateConnection(
                connection_id,
                name=data.get("name"),
                config=data.get("config"),
                enabled=data.get("enabled"),
                merge=True,
            ),
            uow(),
        )
        return one(connection_id)

    @blp.response(204)
    def delete(self, connection_id: str) -> None:
        """Delete a disabled connection with its mappings, links, sync states, conflicts and dead letters"""
        connections.delete_connection(uow(), connection_id)


@blp.route("/connections/<connection_id>/test", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, CheckSchema)
def try_connection(data: dict[str, Any], connection_id: str) -> CheckResult:
    """Try the connection now (the connector's check); a failure is reported, with secrets scrubbed"""
    return connection_status.check_connection(uow(), connection_id)
