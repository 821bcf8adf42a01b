"""``POST /crm/v3/objects/{type}/search``: filter groups, sorts, paging.

Filter groups are ORed, the filters inside a group ANDed. Values compare by
the property's type: numbers numerically, dates and datetimes as instants
(a filter value may be epoch milliseconds or an ISO string), everything else
as case-insensitive text. Only the first sort is used (HubSpot sorts by one
property); ties are broken by record id, ascending, unless the simulator is
told to order ties randomly. ``after`` is an offset, and a query cannot page
past ``cap`` (10,000) results: asking for ``after >= cap`` is a 400.
"""

from __future__ import annotations

import fnmatch
import random
from typing import Any

from connectors.hubspot.sim import errors
from connectors.hubspot.sim.clock import parse_time
from connectors.hubspot.sim.schema import SEARCHABLE_TEXT, Schema
from connectors.hubspot.sim.store import Record

OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}


class SearchLimits:
    def __init__(
        self,
        max_limit: int = 200,
        cap: int = 10_000,
        max_groups: int = 5,
        max_filters_per_group: int = 10,
        max_filters: int = 25,
        random_ties: bool = False,
    ) -> None:
        self.max_limit = max_limit
        self.cap = cap
        self.max_groups = max_groups
        self.max_filters_per_group = max_filters_per_group
        self.max_filters = max_filters
        self.random_ties = random_ties


def run(
    schema: Schema, object_type: str, records: list[Record], request: dict[str, Any], limits: SearchLimits
) -> tuple[list[Record], int, int | None]:
    """The page of matching records, the total, and the next ``after`` offset (or ``None``)."""
    groups = request.get("filterGroups") or []
    if not isinstance(groups, list):
        raise errors.bad_request("filterGroups must be a list")
    if len(groups) > limits.max_groups:
        raise errors.bad_request(
            f"Too many filter groups: {len(groups)} (the maximum is {limits.max_groups})"
        )
    total_filters = 0
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise errors.bad_request("each filter group needs a list of filters")
        if len(filters) > limits.max_filters_per_group:
            raise errors.bad_request(
                f"Too many filters in a group: {len(filters)} (the maximum is {limits.max_filters_per_group})"
            )
        total_filters += len(filters)
        for f in filters:
            _check_filter(schema, object_type, f)
    if total_filters > limits.max_filters:
        raise errors.bad_request(f"Too many filters: {total_filters} (the maximum is {limits.max_filters})")

    limit = _int(request.get("limit", 10), "limit")
    if limit < 0 or limit > limits.max_limit:
        raise errors.bad_request(f"limit must be between 0 and {limits.max_limit}; got {limit}")
    after = _int(request.get("after") or 0, "after")
    if after < 0:
        raise errors.bad_request("after must not be negative")
    if after >= limits.cap:
        raise errors.bad_request(
            f"The search API cannot page past {limits.cap} results (after={after}); narrow the query instead"
        )

    query = request.get("query")
    matched = [
        r
        for r in records
        if (not groups or any(all(_matches(schema, r, f) for f in g["filters"]) for g in groups))
        and (not query or _matches_query(r, str(query)))
    ]
    matched.sort(key=lambda r: r.id)
    if limits.random_ties:
        random.shuffle(matched)
    sort = _first_sort(request.get("sorts"))
    if sort is not None:
        name, descending = sort
        if schema.get(object_type, name) is None:
            raise errors.bad_request(f'Property "{name}" does not exist and cannot be sorted on')
        matched.sort(key=lambda r: schema.sort_key(object_type, name, r.value(name)), reverse=descending)
    total = len(matched)
    page = matched[after : min(after + limit, limits.cap)]
    following = after + len(page)
    return page, total, (following if following < total and page else None)


def _int(value: object, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer; got {value!r}") from None


def _first_sort(sorts: object) -> tuple[str, bool] | None:
    if not sorts:
        return None
    if not isinstance(sorts, list):
        raise errors.bad_request("sorts must be a list")
    first = sorts[0]
    if isinstance(first, str):
        return (first[1:], True) if first.startswith("-") else (first, False)
    if isinstance(first, dict) and first.get("propertyName"):
        direction = str(first.get("direction", "ASCENDING")).upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise errors.bad_request(f"Unknown sort direction {direction}")
        return str(first["propertyName"]), direction == "DESCENDING"
    raise errors.bad_request("each sort needs a propertyName")


def _check_filter(schema: Schema, object_type: str, f: object) -> None:
    if not isinstance(f, dict) or not f.get("propertyName"):
        raise errors.bad_request("each filter needs a propertyName and an operator")
    operator = f.get("operator", "EQ")
    if operator not in OPERATORS:
        raise errors.bad_request(f"Unknown filter operator {operator}; one of {sorted(OPERATORS)}")
    if schema.get(object_type, f["propertyName"]) is None:
        raise errors.bad_request(f'Property "{f["propertyName"]}" does not exist and cannot be filtered on')
    if operator in ("IN", "NOT_IN") and not isinstance(f.get("values"), list):
        raise errors.bad_request(f"{operator} needs a list of values")
    if operator == "BETWEEN" and ("value" not in f or "highValue" not in f):
        raise errors.bad_request("BETWEEN needs value and highValue")
    if operator in ("HAS_PROPERTY", "NOT_HAS_PROPERTY") and "value" in f:
        raise errors.bad_request(f"{operator} takes no value")
    if operator not in ("IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY") and "value" not in f:
        raise errors.bad_request(f"{operator} needs a value")


def _typed(schema: Schema, record: Record, name: str, value: object) -> Any:
    prop = schema.get(record.object_type, name)
    kind = prop["type"] if prop else "string"
    if kind == "number":
        try:
            return float(str(value))
        except ValueError:
            raise errors.bad_request(f"{value!r} is not a number (filtering on {name})") from None
    if kind in ("date", "datetime"):
        ms = parse_time(value)
        if ms is None:
            raise errors.bad_request(f"{value!r} is not a timestamp in milliseconds or ISO 8601 ({name})")
        return ms
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _matches(schema: Schema, record: Record, f: dict[str, Any]) -> bool:
    name, operator = f["propertyName"], f.get("operator", "EQ")
    stored = record.value(name)
    if operator == "HAS_PROPERTY":
        return stored is not None
    if operator == "NOT_HAS_PROPERTY":
        return stored is None
    if operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN") and stored is None:
        return True
    if stored is None:
        return False
    have = _typed(schema, record, name, stored)
    if operator in ("IN", "NOT_IN"):
        inside = have in {_typed(schema, record, name, v) for v in f["values"]}
        return inside if operator == "IN" else not inside
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(f["value"]).lower()
        text = stored.lower()
        found = fnmatch.fnmatchcase(text, pattern) or any(
            fnmatch.fnmatchcase(t, pattern) for t in text.split()
        )
        return found if operator == "CONTAINS_TOKEN" else not found
    want = _typed(schema, record, name, f["value"])
    if operator == "BETWEEN":
        return want <= have <= _typed(schema, record, name, f["highValue"])
    return {
        "EQ": have == want,
        "NEQ": have != want,
        "LT": have < want,
        "LTE": have <= want,
        "GT": have > want,
        "GTE": have >= want,
    }[operator]


def _matches_query(record: Record, query: str) -> bool:
    needle = query.lower()
    return any(needle in (record.value(n) or "").lower() for n in SEARCHABLE_TEXT[record.object_type])
