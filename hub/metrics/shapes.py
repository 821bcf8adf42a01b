"""Plain ``to_dict()`` shapes for the REST layer: JSON types only, nothing lossy.

Datetimes become ISO 8601 strings with their UTC offset, dates ``YYYY-MM-DD``,
decimals (rates and ratios) strings such as ``"0.0526"`` so that no float
rounds them again; money stays an integer of minor units; ``None`` is null.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    return value


def plain(instance: Any) -> dict[str, Any]:
    """A dataclass instance as a dict of JSON values, field by field."""
    return {f.name: jsonable(getattr(instance, f.name)) for f in fields(instance)}
