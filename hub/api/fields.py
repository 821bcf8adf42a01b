"""Marshmallow fields that refuse what the store could not keep.

Every string has a length limit and no control characters (PostgreSQL refuses
NUL bytes; nobody means them), every integer fits a 64-bit column, every
timestamp carries an offset and lies in a sane range.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields, validate

MAX_MONEY = 10**12  # 10 billion kroner in øre: more than any subscription line
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class Text(fields.String):
    def __init__(self, max_length: int, *, min_length: int = 0, **kwargs: Any) -> None:
        validators = [validate.Length(min=min_length, max=max_length)]
        super().__init__(validate=validators, **kwargs)
        self.metadata.setdefault("maxLength", max_length)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if _CONTROL.search(text):
            raise ValidationError("must not contain control characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError("must be valid Unicode text") from exc
        return text.strip()


class Money(fields.Integer):
    """An amount in minor units (øre for DKK)."""

    def __init__(self, *, minimum: int = 0, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(min=minimum, max=MAX_MONEY), **kwargs)


class Count(fields.Integer):
    def __init__(self, *, minimum: int = 0, maximum: int = 100_000, **kwargs: Any) -> None:
        super().__init__(strict=True, validate=validate.Range(min=minimum, max=maximum), **kwargs)


class Timestamp(fields.AwareDateTime):
    """ISO 8601 with an offset; stored and returned as UTC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        try:
            moment = super()._deserialize(value, attr, data, **kwargs).astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: in UTC it is before year 1
            moment = None
        if moment is None or not _EARLIEST <= moment < _LATEST:
            raise ValidationError("must be between 1970 and 2200")
        return moment

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).isoformat()


def Currency(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(r"^[A-Z]{3}$", error="must be an ISO 4217 code like DKK"),
        metadata={"example": "DKK"},
        **kwargs,
    )


def _percent_range(value: Decimal) -> None:
    if not Decimal(0) <= value <= Decimal(100):
        raise ValidationError("must be between 0 and 100")


def Percent(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(
        places=2,
        as_string=True,
        validate=_percent_range,
        metadata={"example": "25.00", "description": "A percentage with at most two decimals"},
        **kwargs,
    )


def Metadata(**kwargs: Any) -> fields.Dict:
    return fields.Dict(
        keys=Text(40, min_length=1),
        values=Text(500),
        attribute="meta",
        data_key="metadata",
        validate=validate.Length(max=50),
        **kwargs,
    )


def Ident(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(r"^[a-z]{1,8}_[0-9A-Z]{26}$", error="is not a valid id"), **kwargs
    )
