"""Tables that page and sort on the server: the sort column comes from a whitelist, never from the request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

LIMITS = (25, 50, 100)


@dataclass(frozen=True)
class Sorting:
    """The whitelisted sort keys of one table, each a column (the id breaks ties so pages never overlap)."""

    columns: Mapping[str, ColumnElement[Any]]
    default: str
    default_descending: bool = False


@dataclass(frozen=True)
class TablePage:
    rows: Sequence[Any]
    total: int
    page: int
    limit: int
    sort: str
    descending: bool
    args: Mapping[str, str]  # the request's other arguments (filters), kept in every link

    limits: tuple[int, ...] = LIMITS

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))

    def link_args(self, **changes: Any) -> dict[str, Any]:
        """The query arguments for a link to another page or sort order of this same table."""
        merged: dict[str, Any] = {
            **self.args,
            "sort": self.sort,
            "dir": "desc" if self.descending else "asc",
            "limit": self.limit,
            "page": self.page,
        }
        merged.update(changes)
        return {key: value for key, value in merged.items() if value not in (None, "")}

    def sort_args(self, key: str) -> dict[str, Any]:
        """Sorting by ``key``; a second click on the current column flips the direction."""
        flip = key == self.sort and not self.descending
        return self.link_args(sort=key, dir="desc" if flip else "asc", page=1)


def _number(raw: str | None, default: int, lowest: int, highest: int) -> int:
    try:
        value = int(raw or default)
    except ValueError:
        return default
    return min(max(value, lowest), highest)


def paged(
    session: Session,
    query: Select[Any],
    sorting: Sorting,
    tie_breaker: ColumnElement[Any],
    args: Mapping[str, str],
    filters: Mapping[str, str],
) -> TablePage:
    """One page of ``query`` as the request's ``sort``, ``dir``, ``page`` and ``limit`` ask (unknown values
    fall back to the defaults: a hand-edited address never fails)."""
    sort = args.get("sort", "")
    if sort not in sorting.columns:
        sort = sorting.default
    direction = args.get("dir")
    if direction in ("asc", "desc"):
        descending = direction == "desc"
    else:  # the default column in its default order; any other column A to Z, smallest first
        descending = sort == sorting.default and sorting.default_descending
    limit = _number(args.get("limit"), LIMITS[0], 1, LIMITS[-1])
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, -(-total // limit))
    page = _number(args.get("page"), 1, 1, pages)
    column = sorting.columns[sort]
    order = [column.desc(), tie_breaker.desc()] if descending else [column.asc(), tie_breaker.asc()]
    rows = session.execute(query.order_by(*order).limit(limit).offset((page - 1) * limit)).all()
    return TablePage(rows, total, page, limit, sort, descending, dict(filters))
