"""/api/v1/conflicts: the queue of fields both sides changed differently, and their resolution."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from hub.api.context import actor, fetch, hub
from hub.api.fields import Ident, Text, Timestamp
from hub.api.pagination import filtered, page
from hub.api.schemas import CreatedRange, Strict, page_of
from hub.services.conflicts import CHOICES, ResolveConflict, resolve_conflict
from hub.store.models import Conflict

blp = Blueprint("conflicts", __name__, url_prefix="/api/v1/conflicts", description="Sync conflicts")


class ConflictFilter(CreatedRange):
    status = fields.String(validate=validate.OneOf(("open", "resolved")))
    connection_id = Ident()
    local_id = Ident()


class ConflictSchema(Schema):
    id = fields.String()
    connection_id = fields.String()
    object_type = fields.String()
    local_id = fields.String()
    remote_id = fields.String(allow_none=True)
    field = fields.String()
    remote_field = fields.String()
    hub_value = fields.Dict()
    remote_value = fields.Dict()
    hub_changed_at = Timestamp(allow_none=True)
    remote_changed_at = Timestamp(allow_none=True)
    status = fields.String()
    resolution = fields.String(allow_none=True)
    resolved_value = fields.Dict(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    resolved_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class ResolveSchema(Strict):
    choice = fields.String(required=True, validate=validate.OneOf(CHOICES))
    value = fields.Dict(
        keys=Text(64, min_length=1),
        values=Text(500, allow_none=True),
        load_default=None,
        metadata={"description": 'With choice "value": the local field(s) to set'},
    )


@blp.route("")
class Conflicts(MethodView):
    @blp.arguments(ConflictFilter, location="query")
    @blp.response(200, page_of(ConflictSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The conflict queue, newest first; filter by status, connection, record"""
        with hub().session_factory() as session:
            query = filtered(
                select(Conflict),
                args,
                status=Conflict.status,
                connection_id=Conflict.connection_id,
                local_id=Conflict.local_id,
            )
            return page(session, query, Conflict.id, args, Conflict.created_at)


@blp.route("/<conflict_id>")
@blp.response(200, ConflictSchema)
def get_conflict(conflict_id: str) -> Conflict:
    """One conflict with both values and when each side changed"""
    return fetch(Conflict, conflict_id, "conflict")


@blp.route("/<conflict_id>/resolve", methods=["POST"])
@blp.arguments(ResolveSchema)
@blp.response(200, ConflictSchema)
def resolve(data: dict[str, Any], conflict_id: str) -> Conflict:
    """Keep the hub's value, take the remote value, or set an edited one; the result syncs both ways"""
    return resolve_conflict(ResolveConflict(conflict_id, data["choice"], data.get("value")), hub(), actor())
