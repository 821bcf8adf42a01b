"""/api/v1/connections/{id}/mappings: field mappings per object type; validate, save, preview on a record."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from hub.api.context import actor, hub, uow
from hub.api.fields import Ident, Timestamp
from hub.api.schemas import Strict
from hub.services import mappings
from hub.services.mappings import SaveMapping
from jobs.relay import queue_push
from jobs.runtime import make_queue
from mappings import Direction, MappingInvalid, Policy

blp = Blueprint(
    "mappings",
    __name__,
    url_prefix="/api/v1/connections",
    description="Field mappings: which local field maps to which remote field, how, in which direction",
)

_NAMES = {
    "description": "A field name, or a list of names when one value spans several fields",
    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
}
_PIPELINE = {
    "description": 'Transforms applied in order, e.g. [{"name": "trim"}, {"name": "lower"}]; '
    "[] is the identity"
}


class MatchKeySchema(Strict):
    local = fields.String(required=True)
    remote = fields.String(required=True)


class FieldEntrySchema(Strict):
    local = fields.Raw(metadata=_NAMES)
    remote = fields.Raw(required=True, metadata=_NAMES)
    direction = fields.String(required=True, validate=validate.OneOf([d.value for d in Direction]))
    to_remote = fields.List(fields.Dict(keys=fields.String(), values=fields.Raw()), metadata=_PIPELINE)
    to_local = fields.List(fields.Dict(keys=fields.String(), values=fields.Raw()), metadata=_PIPELINE)
    policy = fields.String(
        validate=validate.OneOf([p.value for p in Policy]),
        metadata={"description": "Who wins when both sides changed it differently (required for both)"},
    )


class DefinitionSchema(Strict):
    """The mapping document (``mappings.schema``); every rule is checked, problems named by path."""

    object_type = fields.String(metadata={"description": "Defaults to the object type in the URL"})
    remote_object = fields.String(required=True, metadata={"example": "contacts"})
    key = fields.List(
        fields.Nested(MatchKeySchema),
        required=True,
        metadata={"description": "Match keys that link a local record to a remote one (email, VAT, id)"},
    )
    fields_ = fields.List(fields.Nested(FieldEntrySchema), required=True, data_key="fields")


class MappingSchema(Schema):
    id = fields.String()
    connection_id = fields.String()
    object_type = fields.String()
    remote_object = fields.String()
    version = fields.Integer(metadata={"description": "1 when created, one more with each saved change"})
    definition = fields.Dict()
    summary = fields.List(fields.String(), metadata={"example": ["name ↔ firstname+lastname"]})
    created_at = Timestamp()
    updated_at = Timestamp()


class MappingList(Schema):
    data = fields.List(fields.Nested(MappingSchema), required=True)


class SavedSchema(MappingSchema):
    changed = fields.Boolean(metadata={"description": "false: the same definition was already stored"})
    requeued = fields.Integer(metadata={"description": "Linked records queued to be pushed again"})


class CheckedSchema(Schema):
    valid = fields.Boolean()
    definition = fields.Dict(metadata={"description": "The document as it would be stored"})
    summary = fields.List(fields.String())
    changes_pushed_fields = fields.Boolean(metadata={"description": "Saving would change what is pushed"})
    would_requeue = fields.Integer(metadata={"description": "Linked records saving would push again"})


class MappingPreviewRequestSchema(Strict):
    local_id = Ident(required=True, metadata={"description": "The local record to map"})
    definition = fields.Nested(
        DefinitionSchema,
        allow_none=True,
        load_default=None,
        metadata={"description": "A candidate mapping to try; leave out for the stored one"},
    )


class FieldErrorSchema(Schema):
    field = fields.String()
    message = fields.String()


class MappingPreviewSchema(Schema):
    connection_id = fields.String()
    object_type = fields.String()
    local_id = fields.String()
    mapping = fields.String(metadata={"description": "stored or candidate"})
    local = fields.Dict(metadata={"description": "The record's mappable fields"})
    properties = fields.Dict(metadata={"description": "What pushing the whole record would send"})
    errors = fields.List(fields.Nested(FieldErrorSchema), metadata={"description": "Transforms that fail"})
    linked = fields.Boolean()
    remote_id = fields.String(allow_none=True)
    remote = fields.Dict(allow_none=True, metadata={"description": "The linked remote record's fields, now"})
    remote_error = fields.Dict(
        allow_none=True, metadata={"description": "Why the remote record was not read"}
    )
    differences = fields.List(
        fields.Dict(), metadata={"description": "Fields where hub and remote differ now"}
    )
    sync = fields.Dict(
        metadata={
            "description": "What a sync would do now: push, apply (a pull), conflicts, per-field reasons"
        }
    )


def _raw(data: dict[str, Any]) -> dict[str, Any]:
    """The document as the client sent it (marshmallow only vetted its shape)."""
    return {("fields" if key == "fields_" else key): value for key, value in data.items()}


def _enqueue_push(connection_id: str, object_type: str) -> None:
    queue_push(make_queue(hub()), connection_id, object_type)


@blp.route("/<connection_id>/mappings")
@blp.response(200, MappingList)
def list_mappings(connection_id: str) -> dict[str, Any]:
    """The connection's mappings, one per local object type"""
    with hub().session_factory() as session:
        return {"data": mappings.list_mappings(session, connection_id)}


@blp.route("/<connection_id>/mappings/<object_type>")
class MappingByType(MethodView):
    @blp.response(200, MappingSchema)
    def get(self, connection_id: str, object_type: str) -> mappings.MappingView:
        """One mapping with its version and a readable summary"""
        with hub().session_factory() as session:
            return mappings.get_mapping(session, connection_id, object_type)

    @blp.arguments(DefinitionSchema)
    @blp.response(200, SavedSchema)
    def put(self, data: dict[str, Any], connection_id: str, object_type: str) -> dict[str, Any]:
        """Create or replace a mapping; linked records are pushed again when what they push changes"""
        saved = mappings.save_mapping(SaveMapping(connection_id, object_type, _raw(data)), uow())
        if saved.requeued:
            _enqueue_push(connection_id, object_type)
        return {**asdict(saved.mapping), "changed": saved.changed, "requeued": saved.requeued}


@blp.route("/<connection_id>/mappings/<object_type>/validate", methods=["POST"])
@blp.arguments(DefinitionSchema)
@blp.response(200, CheckedSchema)
def validate_mapping(data: dict[str, Any], connection_id: str, object_type: str) -> dict[str, Any]:
    """Check a mapping without saving it (422 names each problem by path, e.g. fields.2.policy)"""
    with hub().session_factory() as session:
        checked = mappings.check_mapping(session, SaveMapping(connection_id, object_type, _raw(data)))
    return {"valid": True, **asdict(checked)}


@blp.route("/<connection_id>/mappings/<object_type>/preview", methods=["POST"])
@blp.arguments(MappingPreviewRequestSchema)
@blp.response(200, MappingPreviewSchema)
def preview_mapping(data: dict[str, Any], connection_id: str, object_type: str) -> mappings.Preview:
    """What a mapping (stored or candidate) makes of a real record, against the linked remote record now.

    Nothing is written anywhere: not in the hub, not at the vendor.
    """
    definition = _raw(data["definition"]) if data.get("definition") is not None else None
    cmd = mappings.PreviewMapping(connection_id, object_type, data["local_id"], definition)
    try:
        return mappings.preview_mapping(cmd, hub(), actor())
    except MappingInvalid as invalid:  # name the problems where they are in this body
        fields_ = {f"definition.{path}": problems for path, problems in invalid.fields.items()}
        raise MappingInvalid(invalid.message, fields=fields_) from None
