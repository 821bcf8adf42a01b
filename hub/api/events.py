"""/api/v1/events: the audit trail."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from hub.api.context import hub
from hub.api.pagination import filtered, page
from hub.api.schemas import EventFilter, EventSchema, page_of
from hub.domain.errors import NotFound
from hub.store.models import Event

blp = Blueprint("events", __name__, url_prefix="/api/v1/events", description="The audit trail")


@blp.route("")
@blp.arguments(EventFilter, location="query")
@blp.response(200, page_of(EventSchema))
def list_events(args: dict[str, Any]) -> dict[str, Any]:
    """Who changed what, when, with before and after; newest first"""
    with hub().session_factory() as session:
        query = filtered(
            select(Event),
            args,
            customer_id=Event.customer_id,
            type=Event.type,
            aggregate_type=Event.aggregate_type,
            aggregate_id=Event.aggregate_id,
        )
        if args.get("occurred_gte") is not None:
            query = query.where(Event.occurred_at >= args["occurred_gte"])
        if args.get("occurred_lt") is not None:
            query = query.where(Event.occurred_at < args["occurred_lt"])
        return page(session, query, Event.id, args)


@blp.route("/<int:event_id>")
@blp.response(200, EventSchema)
def get_event(event_id: int) -> Event:
    """Get one event"""
    with hub().session_factory() as session:
        found = session.get(Event, event_id) if event_id < 2**62 else None
        if found is None:
            raise NotFound(f"no event {event_id}")
        return found
