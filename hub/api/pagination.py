"""Cursor pagination: newest first, ``limit`` and ``starting_after``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session


def page(
    session: Session,
    query: Select[Any],
    key: InstrumentedAttribute[Any],
    args: dict[str, Any],
    created: InstrumentedAttribute[Any] | None = None,
) -> dict[str, Any]:
    """One page of ``query`` ordered by ``key`` descending, with the next cursor."""
    if created is not None:
        if args.get("created_gte") is not None:
            query = query.where(created >= args["created_gte"])
        if args.get("created_lt") is not None:
            query = query.where(created < args["created_lt"])
    if args.get("starting_after") is not None:
        query = query.where(key < args["starting_after"])
    limit = args["limit"]
    rows = list(session.scalars(query.order_by(key.desc()).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    cursor = getattr(rows[-1], key.key) if has_more else None
    return {"data": rows, "has_more": has_more, "next_cursor": str(cursor) if cursor is not None else None}


def filtered(query: Select[Any], args: dict[str, Any], **columns: InstrumentedAttribute[Any]) -> Select[Any]:
    """Add ``column == args[name]`` for every filter the caller gave."""
    for name, column in columns.items():
        if args.get(name) is not None:
            query = query.where(column == args[name])
    return query
