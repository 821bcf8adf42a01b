"""/api/v1/dead-letters: sync work that failed for good, with its request and response; replay."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from hub.api.context import actor, fetch, hub
from hub.api.fields import Ident, Timestamp
from hub.api.pagination import filtered, page
from hub.api.schemas import CreatedRange, EmptySchema, page_of
from hub.services.dead_letters import replay_dead_letter
from hub.store.models import DeadLetter
from jobs.relay import queue_push
from jobs.runtime import make_queue

blp = Blueprint("dead_letters", __name__, url_prefix="/api/v1/dead-letters", description="Dead letters")


class DeadLetterFilter(CreatedRange):
    connection_id = Ident()
    open = fields.Boolean(metadata={"description": "true: not resolved yet; false: resolved"})


class DeadLetterSchema(Schema):
    id = fields.String()
    connection_id = fields.String()
    object_type = fields.String()
    local_id = fields.String(allow_none=True)
    remote_id = fields.String(allow_none=True)
    operation = fields.String()
    idempotency_key = fields.String()
    reason = fields.String()
    request = fields.Dict(allow_none=True)
    response = fields.Dict(allow_none=True)
    attempts = fields.Integer()
    created_at = Timestamp()
    replayed_at = Timestamp(allow_none=True)
    resolved_at = Timestamp(allow_none=True)


@blp.route("")
@blp.arguments(DeadLetterFilter, location="query")
@blp.response(200, page_of(DeadLetterSchema))
def list_dead_letters(args: dict[str, Any]) -> dict[str, Any]:
    """Failed sync work, newest first, with the reason and the (scrubbed) request and response"""
    with hub().session_factory() as session:
        query = filtered(select(DeadLetter), args, connection_id=DeadLetter.connection_id)
        if args.get("open") is not None:
            resolved = DeadLetter.resolved_at.is_(None)
            query = query.where(resolved if args["open"] else ~resolved)
        return page(session, query, DeadLetter.id, args, DeadLetter.created_at)


@blp.route("/<dead_letter_id>")
@blp.response(200, DeadLetterSchema)
def get_dead_letter(dead_letter_id: str) -> DeadLetter:
    """One dead letter"""
    return fetch(DeadLetter, dead_letter_id, "dead letter")


@blp.route("/<dead_letter_id>/replay", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, DeadLetterSchema)
def replay(data: dict[str, Any], dead_letter_id: str) -> DeadLetter:
    """Send the record again (its current state); resolved once a push goes through"""
    letter = replay_dead_letter(dead_letter_id, hub(), actor())
    queue_push(make_queue(hub()), letter.connection_id, letter.object_type)
    return letter
