"""Transforms: small pure functions that convert a field's value between the hub's form and a vendor's.

Every transform is registered by name with a marshmallow schema for its parameters, so a mapping
stored as JSON (``{"name": "minor_to_decimal", "currency": "DKK"}``) is validated before it is used.
A ``Step`` is one validated use of a transform; a pipeline is a list of steps applied in order.

Rules every transform follows (the engine relies on them):

- ``None`` means "no value" and passes through unchanged, except in ``constant`` and ``default``.
- ``""`` also means "no value" to the transforms that parse (money, numbers, dates, booleans,
  enums): they turn it into ``None``. Text transforms (``trim``, ``lower``, …) keep it as ``""``.
- No floats, ever: money and numbers are parsed from text, ``int`` or ``Decimal`` exactly.
- Datetimes are timezone-aware; a naive one is an error, never silently taken as UTC.
- A value a transform cannot convert raises ``TransformError`` naming the transform and the value
  (and, once the engine adds it, the field and direction). Nothing else escapes a step.
- Most transforms have an inverse (``split_name`` ↔ ``join_name``, ``minor_to_decimal`` ↔
  ``decimal_to_minor``, ``enum_map`` ↔ ``enum_map`` with ``reverse``); ``invert`` builds the
  pipeline for the other direction from one direction's pipeline.
"""

from __future__ import annotations

import re
from collections import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.parser import isoparse
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from hub.domain.money import is_currency, minor_unit_digits, to_decimal_string
from mappings.errors import MappingError, MappingInvalid, TransformError, flatten

Params = dict[str, Any]
StepData = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000
# ASCII digits only: Python's \d and int() also accept "٣" and other scripts' digits.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WORD = re.compile(r"\S+")


class _Fail(Exception):
    """Raised inside a transform function; ``Step.apply`` turns it into a ``TransformError``."""


# --- registry -----------------------------------------------------------------------------------------


class _Params(Schema):
    """Base of every parameter schema: unknown parameters are rejected with a clear message."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "not a parameter of this transform"}


@dataclass(frozen=True)
class Transform:
    name: str
    function: Callable[..., Any]
    params: Schema
    inverse: Callable[[Params], list[StepData] | None]
    passes_none: bool
    summary: str


REGISTRY: dict[str, Transform] = {}


def _no_inverse(_params: Params) -> None:
    return None


def _identity_inverse(_params: Params) -> list[StepData]:
    return []


def _inverse_named(name: str) -> Callable[[Params], list[StepData]]:
    """The inverse is the transform ``name`` with the same parameters."""
    return lambda params: [{"name": name, **params}]


def register(
    name: str,
    *,
    params: dict[str, fields.Field] | type[_Params] | None = None,
    inverse: Callable[[Params], list[StepData] | None] = _no_inverse,
    passes_none: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if isinstance(params, type):
        schema_class = params
    else:
        schema_class = type(f"{name}_params", (_Params,), dict(params or {}))

    def add(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in REGISTRY:
            raise RuntimeError(f"transform {name!r} registered twice")
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        REGISTRY[name] = Transform(name, function, schema_class(), inverse, passes_none, summary)
        return function

    return add


def known() -> list[str]:
    return sorted(REGISTRY)


# --- steps and pipelines ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One validated use of a transform: its name and its parameters."""

    name: str
    params: Params = field(default_factory=dict)

    @classmethod
    def load(cls, data: abc.Mapping[str, Any]) -> Step:
        """Validate ``{"name": ..., **params}``; raises marshmallow's ``ValidationError`` keyed by param."""
        if not isinstance(data, abc.Mapping):
            raise ValidationError("a transform must be an object like {'name': 'trim'}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError({"name": ["give the transform's name"]})
        transform = REGISTRY.get(name)
        if transform is None:
            raise ValidationError({"name": [f"unknown transform {name!r} (known: {', '.join(known())})"]})
        raw = {key: value for key, value in data.items() if key != "name"}
        try:
            params = transform.params.load(raw)
        except ValidationError as error:
            raise ValidationError(_prefix(error.messages, name)) from error
        return cls(name, params)

    def dump(self) -> StepData:
        return {"name": self.name, **self.params}

    def apply(self, value: Any) -> Any:
        transform = REGISTRY[self.name]
        if value is None and transform.passes_none:
            return None
        try:
            return transform.function(value, **self.params)
        except TransformError:
            raise
        except _Fail as failure:
            raise TransformError(str(failure), transform=self.name, value=value) from None
        except Exception as error:  # a transform must never leak a bare exception
            raise TransformError(
                f"{type(error).__name__}: {error}", transform=self.name, value=value
            ) from error


def _prefix(messages: Any, transform: str) -> Any:
    """Say which transform a parameter message belongs to: ``split_name: must be one of …``."""
    if isinstance(messages, dict):
        return {key: _prefix(inner, transform) for key, inner in messages.items()}
    if isinstance(messages, list):
        return [_prefix(inner, transform) for inner in messages]
    return f"{transform}: {messages}"


def step(name: str, **params: Any) -> Step:
    """A validated step built in code: ``step("minor_to_decimal", currency="DKK")``."""
    try:
        return Step.load({"name": name, **params})
    except ValidationError as error:
        problems = flatten(error.messages)
        raise MappingInvalid(f"invalid transform {name!r}: {problems}", fields=problems) from None


def run(steps: abc.Sequence[Step], value: Any) -> Any:
    """Apply the steps in order. An empty pipeline is the identity."""
    for one in steps:
        value = one.apply(value)
    return value


def invert(steps: abc.Sequence[Step]) -> list[Step]:
    """The pipeline for the other direction: each step's inverse, in reverse order.

    Raises ``MappingError`` when a step has no inverse (``constant``, ``default``, ``split_name``
    with a ``part``, an ``enum_map`` that is not one-to-one).
    """
    inverted: list[Step] = []
    for one in reversed(steps):
        inverse = REGISTRY[one.name].inverse(one.params)
        if inverse is None:
            raise MappingError(f"transform {one.name!r} with {one.params} has no inverse")
        inverted.extend(Step.load(data) for data in inverse)
    return inverted


# --- helpers --------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return type(value).__name__


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Fail(f"expected text, got {_kind(value)}")
    return value


def _is_empty(value: Any) -> bool:
    return value is None or value == ""


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise _Fail(f"expected a datetime, got {_kind(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _Fail("the datetime has no timezone (naive datetimes are never guessed)")
    return value


def _date_only(value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _Fail(f"expected a date, got {_kind(value)}")
    return value


def _integer(value: Any) -> int:
    """An exact integer from int, integral Decimal or text of digits; bool and float are refused."""
    if isinstance(value, bool):
        raise _Fail("expected a whole number, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise _Fail("expected a whole number")
        return int(value)
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise _Fail("expected a whole number like 12345")
        return int(value)
    raise _Fail(f"expected a whole number, got {_kind(value)}")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationError(f"unknown timezone {name!r}") from error


def _validate_zone(name: str) -> None:
    _zone(name)


def _validate_currency(code: str) -> None:
    if not is_currency(code):
        raise ValidationError(f"unknown currency {code!r} (an ISO 4217 code like DKK)")


_CURRENCY = {"currency": fields.String(required=True, validate=_validate_currency)}
_TIMEZONE = {"timezone": fields.String(validate=_validate_zone)}


# --- text -----------------------------------------------------------------------------------------------


@register("trim", inverse=_identity_inverse)
def trim(value: Any, /) -> str:
    """Strip leading and trailing whitespace."""
    return _text(value).strip()


@register("lower", inverse=_identity_inverse)
def lower(value: Any, /) -> str:
    """Lower-case."""
    return _text(value).lower()


@register("upper", inverse=_identity_inverse)
def upper(value: Any, /) -> str:
    """Upper-case."""
    return _text(value).upper()


@register("title", inverse=_identity_inverse)
def title(value: Any, /) -> str:
    """Each whitespace-separated word: first letter upper-case, the rest lower-case."""
    return _WORD.sub(lambda word: word[0][:1].upper() + word[0][1:].lower(), _text(value))


def _split_inverse(params: Params) -> list[StepData] | None:
    return [{"name": "join_name"}] if "part" not in params else None


@register(
    "split_name",
    params={"part": fields.String(validate=validate.OneOf(["first", "last"]))},
    inverse=_split_inverse,
)
def split_name(value: Any, /, *, part: str | None = None) -> str | list[str]:
    """A full name → [first, last]: the first word, and the rest (so "Ludwig van Beethoven" keeps "van").

    With ``part`` only that part. Whitespace is normalised; a one-word name has an empty last part.
    """
    words = _text(value).split()
    first = words[0] if words else ""
    last = " ".join(words[1:])
    if part == "first":
        return first
    if part == "last":
        return last
    return [first, last]


@register("join_name", inverse=_inverse_named("split_name"))
def join_name(value: Any, /) -> str:
    """Name parts ([first, last], …) → one name: the non-empty parts joined by one space."""
    if not isinstance(value, list | tuple):
        raise _Fail(f"expected a list of name parts, got {_kind(value)}")
    words: list[str] = []
    for one in value:
        if one is None:
            continue
        words.extend(_text(one).split())
    return " ".join(words)


@register("join_text", params={"separator": fields.String(validate=validate.Length(min=1))})
def join_text(value: Any, /, *, separator: str = " ") -> str:
    """Text parts → one text: the non-empty parts, trimmed, joined by ``separator`` (a space by default).

    ["Pro", "Karen Jensen"] with " — " → "Pro — Karen Jensen"; an empty part is left out with its separator.
    """
    if not isinstance(value, list | tuple):
        raise _Fail(f"expected a list of text parts, got {_kind(value)}")
    parts = [_text(one).strip() for one in value if one is not None]
    return separator.join(part for part in parts if part)


# --- money and numbers ----------------------------------------------------------------------------------


@register("minor_to_decimal", params=_CURRENCY, inverse=_inverse_named("decimal_to_minor"))
def minor_to_decimal(value: Any, /, *, currency: str) -> str | None:
    """Minor units → a decimal string with the currency's precision: 12345 DKK → "123.45"."""
    if _is_empty(value):
        return None
    return to_decimal_string(_integer(value), currency)


@register("decimal_to_minor", params=_CURRENCY, inverse=_inverse_named("minor_to_decimal"))
def decimal_to_minor(value: Any, /, *, currency: str) -> int | None:
    """A decimal (text, Decimal or int) → minor units: "123.45" DKK → 12345. Never rounds.

    More decimals than the currency has are refused unless they are zeros ("123.450" is 12345 øre;
    "123.456" is an error): a value is never rounded on its way in.
    """
    if _is_empty(value):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _Fail(f"expected a decimal amount, got {_kind(value)}")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise _Fail("expected a decimal amount like 123.45")
    try:
        amount = Decimal(value)
    except InvalidOperation as error:  # pragma: no cover - the pattern above admits only valid text
        raise _Fail("expected a decimal amount like 123.45") from error
    if not amount.is_finite():
        raise _Fail("expected a finite amount")
    digits = minor_unit_digits(currency)
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise _Fail(f"more decimals than {currency} has ({digits}); amounts are never rounded")
    return int(minor)


@register("money_to_decimal")
def money_to_decimal(value: Any, /) -> str | None:
    """[minor units, currency] → a decimal string in that currency's precision: [12345, "EUR"] → "123.45".

    For amounts in the record's own currency (a EUR customer's MRR), where ``minor_to_decimal`` would
    fix one currency for every record. No amount is no value; a missing or unknown currency is an error,
    never a guess. It has no inverse: a decimal alone does not say which currency it was in.
    """
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _Fail("expected [amount in minor units, currency]")
    amount, currency = value
    if _is_empty(amount):
        return None
    if not isinstance(currency, str) or not is_currency(currency):
        raise _Fail(f"{currency!r} is not an ISO 4217 currency code")
    return to_decimal_string(_integer(amount), currency)


@register("int_to_string", inverse=_inverse_named("string_to_int"))
def int_to_string(value: Any, /) -> str:
    """An integer → its decimal text: 42 → "42"."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Fail(f"expected an integer, got {_kind(value)}")
    return str(value)


@register("string_to_int", inverse=_inverse_named("int_to_string"))
def string_to_int(value: Any, /) -> int | None:
    """Decimal text of a whole number → int: "42" → 42 ("4.0", "4e1" and " 4" are refused)."""
    if _is_empty(value):
        return None
    return _integer(value)


@register("bool_to_string", inverse=_inverse_named("string_to_bool"))
def bool_to_string(value: Any, /) -> str:
    """True → "true", False → "false"."""
    if not isinstance(value, bool):
        raise _Fail(f"expected true or false, got {_kind(value)}")
    return "true" if value else "false"


@register("string_to_bool", inverse=_inverse_named("bool_to_string"))
def string_to_bool(value: Any, /) -> bool | None:
    """Text "true" / "false" (any case) → True / False."""
    if _is_empty(value):
        return None
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text not in ("true", "false"):
        raise _Fail('expected "true" or "false"')
    return text == "true"


# --- dates and times ------------------------------------------------------------------------------------


def _epoch_ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@register(
    "datetime_to_iso",
    params={"timespec": fields.String(validate=validate.OneOf(["seconds", "milliseconds", "microseconds"]))},
    inverse=lambda _params: [{"name": "iso_to_datetime"}],
)
def datetime_to_iso(value: Any, /, *, timespec: str = "milliseconds") -> str:
    """An aware datetime → ISO 8601 in UTC with a "Z": "2026-01-15T09:00:00.000Z" (milliseconds default)."""
    text = _aware(value).astimezone(UTC).isoformat(timespec=timespec)
    return text.removesuffix("+00:00") + "Z"


@register("iso_to_datetime", inverse=lambda _params: [{"name": "datetime_to_iso"}])
def iso_to_datetime(value: Any, /) -> datetime | None:
    """ISO 8601 text with an offset or "Z" → an aware datetime in UTC. Text without an offset is refused."""
    if _is_empty(value):
        return None
    if isinstance(value, datetime):
        return _aware(value).astimezone(UTC)
    try:
        parsed = isoparse(_text(value))
    except (ValueError, OverflowError) as error:
        raise _Fail("expected an ISO 8601 datetime like 2026-01-15T09:00:00Z") from error
    return _aware(parsed).astimezone(UTC)


@register("datetime_to_epoch_ms", inverse=_inverse_named("epoch_ms_to_datetime"))
def datetime_to_epoch_ms(value: Any, /) -> int:
    """An aware datetime → milliseconds since 1970-01-01 UTC (sub-millisecond digits are dropped)."""
    return _epoch_ms(_aware(value))


@register("epoch_ms_to_datetime", inverse=_inverse_named("datetime_to_epoch_ms"))
def epoch_ms_to_datetime(value: Any, /) -> datetime | None:
    """Milliseconds since the epoch (int or digits, as HubSpot sends them) → an aware datetime in UTC."""
    if _is_empty(value):
        return None
    try:
        return _EPOCH + timedelta(milliseconds=_integer(value))
    except OverflowError as error:
        raise _Fail("out of the range of dates") from error


@register("date_to_iso", inverse=_inverse_named("iso_to_date"))
def date_to_iso(value: Any, /) -> str:
    """A date → "YYYY-MM-DD"."""
    return _date_only(value).isoformat()


@register("iso_to_date", inverse=_inverse_named("date_to_iso"))
def iso_to_date(value: Any, /) -> date | None:
    """A date from "YYYY-MM-DD", or from an ISO datetime at exactly midnight UTC (some vendors send those)."""
    if _is_empty(value):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = _text(value)
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError as error:
            raise _Fail("not a calendar date") from error
    moment = iso_to_datetime(text)
    assert moment is not None
    if moment.timetz().replace(tzinfo=None) != time(0):
        raise _Fail("a date must be YYYY-MM-DD or exactly midnight UTC")
    return moment.date()


@register("date_to_epoch_ms", inverse=_inverse_named("epoch_ms_to_date"))
def date_to_epoch_ms(value: Any, /) -> int:
    """A date → epoch milliseconds at midnight UTC (HubSpot's form for date properties)."""
    return _epoch_ms(datetime.combine(_date_only(value), time(0), tzinfo=UTC))


@register("epoch_ms_to_date", inverse=_inverse_named("date_to_epoch_ms"))
def epoch_ms_to_date(value: Any, /) -> date | None:
    """Epoch milliseconds at midnight UTC → a date; any other time of day is refused."""
    if _is_empty(value):
        return None
    milliseconds = _integer(value)
    if milliseconds % _DAY_MS:
        raise _Fail("not midnight UTC, so not a date")
    moment = epoch_ms_to_datetime(milliseconds)
    assert moment is not None
    return moment.date()


@register("datetime_to_date", params=_TIMEZONE, inverse=_inverse_named("date_to_datetime"))
def datetime_to_date(value: Any, /, *, timezone: str = "UTC") -> date:
    """An aware datetime → its calendar date in ``timezone`` (UTC by default). Drops the time of day."""
    return _aware(value).astimezone(_zone(timezone)).date()


@register("date_to_datetime", params=_TIMEZONE, inverse=_inverse_named("datetime_to_date"))
def date_to_datetime(value: Any, /, *, timezone: str = "UTC") -> datetime:
    """A date → midnight at the start of that day in ``timezone`` (UTC by default), aware."""
    return datetime.combine(_date_only(value), time(0), tzinfo=_zone(timezone))


# --- values -----------------------------------------------------------------------------------------------


_SCALAR = str | int | bool


class _EnumParams(_Params):
    values = fields.Dict(keys=fields.String(), values=fields.Raw(), required=True)
    reverse = fields.Boolean()

    @validates_schema
    def _check(self, data: Params, **_kwargs: Any) -> None:
        values = data.get("values", {})
        if not values:
            raise ValidationError("give at least one value", field_name="values")
        bad = [
            key
            for key, remote in values.items()
            if isinstance(remote, float) or not isinstance(remote, _SCALAR)
        ]
        if bad:
            raise ValidationError(
                f"values must be text, whole numbers or booleans: {bad}", field_name="values"
            )
        if data.get("reverse"):
            seen: dict[tuple[bool, Any], str] = {}
            for key, remote in values.items():
                if _enum_key(remote) in seen:
                    raise ValidationError(
                        f"{remote!r} is the value of both {seen[_enum_key(remote)]!r} and {key!r}, "
                        "so it cannot be mapped back (reverse needs a one-to-one map)",
                        field_name="values",
                    )
                seen[_enum_key(remote)] = key


def _enum_inverse(params: Params) -> list[StepData] | None:
    values = params["values"]
    if len({_enum_key(remote) for remote in values.values()}) != len(values):
        return None
    return [{"name": "enum_map", "values": values, "reverse": not params.get("reverse", False)}]


@register("enum_map", params=_EnumParams, inverse=_enum_inverse)
def enum_map(value: Any, /, *, values: dict[str, Any], reverse: bool = False) -> Any:
    """Map each known value to its counterpart: ``values`` is {local: remote}; ``reverse`` maps back.

    The same ``values`` serve both directions, so a mapping states the table once. An unknown value is
    an error listing the known ones; an empty value stays empty unless the table maps "" explicitly.
    """
    pairs = [(remote, local) for local, remote in values.items()] if reverse else list(values.items())
    lookup = {_enum_key(known_value): mapped for known_value, mapped in pairs}
    try:
        found = _enum_key(value) in lookup
    except TypeError:  # unhashable: a list or a dict is never an enum value
        found = False
    if found:
        return lookup[_enum_key(value)]
    if value == "":
        return None
    raise _Fail(f"{value!r} is not one of {', '.join(repr(known_value) for known_value, _ in pairs)}")


def _enum_key(value: Any) -> tuple[bool, Any]:
    """True is not 1 and False is not 0 in an enum table (Python's dicts would say they are)."""
    return (isinstance(value, bool), value)


@register("constant", params={"value": fields.Raw(required=True, allow_none=True)}, passes_none=False)
def constant(_value: Any, /, *, value: Any) -> Any:
    """Always the given value, whatever comes in (e.g. HubSpot's ``lifecyclestage`` = "customer")."""
    return value


@register("default", params={"value": fields.Raw(required=True)}, passes_none=False)
def default(current: Any, /, *, value: Any) -> Any:
    """The given value when the value is empty (None or ""), else the value unchanged."""
    return value if _is_empty(current) else current


@register("empty_to_none", inverse=_identity_inverse)
def empty_to_none(value: Any, /) -> Any:
    """An empty string becomes None (for hub fields that store "no value" as NULL); the rest is unchanged."""
    return None if value == "" else value
