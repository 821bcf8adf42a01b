"""Every transform both ways: values, round trips, empties and errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.errors import MappingError, MappingInvalid, TransformError
from mappings.transforms import REGISTRY, Step, Transform, invert, known, run, step

CPH = timezone(timedelta(hours=1))


def apply(name: str, value: Any, /, **params: Any) -> Any:
    return step(name, **params).apply(value)


def fails(name: str, value: Any, fragment: str, /, **params: Any) -> TransformError:
    with pytest.raises(TransformError) as caught:
        apply(name, value, **params)
    error = caught.value
    assert error.transform == name
    assert error.value == value or (error.value != error.value)  # NaN-safe
    assert fragment in error.reason, error.reason
    assert name in str(error)
    return error


# --- text ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("trim", "  Ada \t\n", "Ada"),
        ("trim", "", ""),
        ("lower", "ADA@Example.COM", "ada@example.com"),
        ("upper", "dk12345678", "DK12345678"),
        ("title", "ada o'LOVELACE  king", "Ada O'lovelace  King"),
        ("title", "æble ØRE", "Æble Øre"),
    ],
)
def test_text_transforms(name: str, value: str, expected: str) -> None:
    assert apply(name, value) == expected


@pytest.mark.parametrize("name", ["trim", "lower", "upper", "title", "split_name"])
def test_text_transforms_pass_none_and_refuse_other_types(name: str) -> None:
    assert apply(name, None) is None
    fails(name, 42, "expected text, got int")


@pytest.mark.parametrize(
    ("full", "first", "last"),
    [
        ("Ada Lovelace", "Ada", "Lovelace"),
        ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
        ("  Ada   King  Lovelace ", "Ada", "King Lovelace"),
        ("Cher", "Cher", ""),
        ("", "", ""),
        ("Søren Kierkegaard", "Søren", "Kierkegaard"),
    ],
)
def test_split_name(full: str, first: str, last: str) -> None:
    assert apply("split_name", full) == [first, last]
    assert apply("split_name", full, part="first") == first
    assert apply("split_name", full, part="last") == last


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["Ada", "Lovelace"], "Ada Lovelace"),
        (("Ludwig", "van Beethoven"), "Ludwig van Beethoven"),
        (["Cher", ""], "Cher"),
        (["Cher", None], "Cher"),
        (["", "Lovelace"], "Lovelace"),
        ([" Ada ", "  King   Lovelace"], "Ada King Lovelace"),
        ([None, None], ""),
    ],
)
def test_join_name(parts: list[str | None], expected: str) -> None:
    assert apply("join_name", parts) == expected


def test_join_name_errors() -> None:
    fails("join_name", "Ada Lovelace", "expected a list of name parts")
    fails("join_name", ["Ada", 7], "expected text, got int")
    assert apply("join_name", None) is None


_word = st.text(st.characters(categories=["L"]), min_size=1, max_size=12)
_names = st.lists(_word, min_size=0, max_size=5)


@given(words=_names, gaps=st.lists(st.sampled_from([" ", "  ", "\t", " \n "]), min_size=6, max_size=6))
def test_join_of_split_is_the_name_with_whitespace_normalised(words: list[str], gaps: list[str]) -> None:
    full = gaps[0] + "".join(word + gap for word, gap in zip(words, gaps[1:], strict=False))
    assert apply("join_name", apply("split_name", full)) == " ".join(words)


@given(first=_word, last=_names)
def test_split_of_join_gives_the_parts_back(first: str, last: list[str]) -> None:
    parts = [first, " ".join(last)]
    assert apply("split_name", apply("join_name", parts)) == parts


# --- money -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "minor", "decimal"),
    [
        ("DKK", 12345, "123.45"),
        ("DKK", "12345", "123.45"),
        ("DKK", Decimal(12345), "123.45"),
        ("DKK", -5, "-0.05"),
        ("DKK", 0, "0.00"),
        ("EUR", 100, "1.00"),
        ("ISK", 12345, "12345"),
        ("JPY", 500, "500"),
        ("KWD", 12345, "12.345"),
    ],
)
def test_minor_to_decimal(currency: str, minor: Any, decimal: str) -> None:
    assert apply("minor_to_decimal", minor, currency=currency) == decimal


@pytest.mark.parametrize("empty", [None, ""])
def test_money_transforms_treat_empty_as_no_value(empty: Any) -> None:
    assert apply("minor_to_decimal", empty, currency="DKK") is None
    assert apply("decimal_to_minor", empty, currency="DKK") is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1.5, "got float"),
        (True, "got bool"),
        ("12.3", "whole number"),
        ("12 345", "whole number"),
        (Decimal("1.5"), "whole number"),
        (Decimal("NaN"), "whole number"),
        ([1], "got list"),
    ],
)
def test_minor_to_decimal_errors(value: Any, fragment: str) -> None:
    fails("minor_to_decimal", value, fragment, currency="DKK")


@pytest.mark.parametrize(
    ("currency", "decimal", "minor"),
    [
        ("DKK", "123.45", 12345),
        ("DKK", "123.4", 12340),
        ("DKK", "123", 12300),
        ("DKK", "123.", 12300),
        ("DKK", ".5", 50),
        ("DKK", "-0.05", -5),
        ("DKK", "+1.00", 100),
        ("DKK", "123.450", 12345),  # more digits, but only zeros: nothing is rounded
        ("DKK", Decimal("123.45"), 12345),
        ("DKK", 7, 700),
        ("ISK", "12345", 12345),
        ("KWD", "12.345", 12345),
    ],
)
def test_decimal_to_minor(currency: str, decimal: Any, minor: int) -> None:
    result = apply("decimal_to_minor", decimal, currency=currency)
    assert result == minor
    assert type(result) is int


@pytest.mark.parametrize(
    ("currency", "value", "fragment"),
    [
        ("DKK", "123.456", "more decimals than DKK has (2)"),
        ("DKK", "0.001", "more decimals than DKK has (2)"),
        ("ISK", "12.5", "more decimals than ISK has (0)"),
        ("DKK", Decimal("1.005"), "more decimals"),
        ("DKK", "1e3", "decimal amount like 123.45"),
        ("DKK", "1,50", "decimal amount like 123.45"),
        ("DKK", "1_000", "decimal amount like 123.45"),
        ("DKK", "NaN", "decimal amount like 123.45"),
        ("DKK", "١٢٣", "decimal amount like 123.45"),  # Arabic-Indic digits: Decimal() would take them
        ("DKK", Decimal("Infinity"), "finite"),
        ("DKK", 1.5, "got float"),
        ("DKK", True, "got bool"),
    ],
)
def test_decimal_to_minor_errors(currency: str, value: Any, fragment: str) -> None:
    fails("decimal_to_minor", value, fragment, currency=currency)


_currencies = st.sampled_from(["DKK", "EUR", "ISK", "JPY", "KWD", "BHD", "SEK"])


@given(currency=_currencies, minor=st.integers(min_value=-(10**15), max_value=10**15))
def test_minor_to_decimal_round_trip(currency: str, minor: int) -> None:
    text = apply("minor_to_decimal", minor, currency=currency)
    assert apply("decimal_to_minor", text, currency=currency) == minor
    assert Decimal(text) == Decimal(minor).scaleb(-{"ISK": 0, "JPY": 0, "KWD": 3, "BHD": 3}.get(currency, 2))


@given(
    currency=_currencies,
    amount=st.decimals(
        min_value=-(10**12), max_value=10**12, places=3, allow_nan=False, allow_infinity=False
    ),
)
def test_decimal_to_minor_is_exact_or_refuses(currency: str, amount: Decimal) -> None:
    digits = {"ISK": 0, "JPY": 0, "KWD": 3, "BHD": 3}.get(currency, 2)
    representable = amount == amount.quantize(Decimal(1).scaleb(-digits))
    if not representable:
        with pytest.raises(TransformError):
            apply("decimal_to_minor", str(amount), currency=currency)
        return
    minor = apply("decimal_to_minor", str(amount), currency=currency)
    assert Decimal(minor).scaleb(-digits) == amount
    assert Decimal(apply("minor_to_decimal", minor, currency=currency)) == amount


# --- numbers and booleans -----------------------------------------------------------------------------------


def test_int_and_string() -> None:
    assert apply("int_to_string", 42) == "42"
    assert apply("int_to_string", -7) == "-7"
    assert apply("string_to_int", "42") == 42
    assert apply("string_to_int", "-7") == -7
    assert apply("string_to_int", 42) == 42
    assert apply("string_to_int", "") is None
    fails("int_to_string", True, "got bool")
    fails("int_to_string", "42", "got str")
    for bad in ["4.0", "4e1", " 4", "four", "٣"]:
        fails("string_to_int", bad, "whole number")


@given(st.integers())
def test_int_string_round_trip(number: int) -> None:
    assert apply("string_to_int", apply("int_to_string", number)) == number


def test_bool_and_string() -> None:
    assert apply("bool_to_string", True) == "true"
    assert apply("bool_to_string", False) == "false"
    assert apply("string_to_bool", "true") is True
    assert apply("string_to_bool", "FALSE") is False
    assert apply("string_to_bool", False) is False
    assert apply("string_to_bool", "") is None
    fails("bool_to_string", "true", "expected true or false, got str")
    fails("bool_to_string", 1, "got int")
    fails("string_to_bool", "yes", '"true" or "false"')
    for value in (True, False):
        assert apply("string_to_bool", apply("bool_to_string", value)) is value


# --- dates and times ----------------------------------------------------------------------------------------


def test_datetime_iso_both_ways() -> None:
    moment = datetime(2026, 1, 15, 10, 30, 5, 123456, tzinfo=CPH)
    assert apply("datetime_to_iso", moment) == "2026-01-15T09:30:05.123Z"
    assert apply("datetime_to_iso", moment, timespec="seconds") == "2026-01-15T09:30:05Z"
    assert apply("datetime_to_iso", moment, timespec="microseconds") == "2026-01-15T09:30:05.123456Z"
    parsed = apply("iso_to_datetime", "2026-01-15T09:30:05.123Z")
    assert parsed == datetime(2026, 1, 15, 9, 30, 5, 123000, tzinfo=UTC)
    assert parsed.tzinfo is UTC
    assert apply("iso_to_datetime", "2026-01-15T10:30:05+01:00") == datetime(
        2026, 1, 15, 9, 30, 5, tzinfo=UTC
    )
    assert apply("iso_to_datetime", moment) == moment
    assert apply("iso_to_datetime", "") is None


def test_datetime_errors() -> None:
    fails("datetime_to_iso", datetime(2026, 1, 15, 9, 0), "no timezone")
    fails("datetime_to_iso", date(2026, 1, 15), "expected a datetime, got date")
    fails("datetime_to_iso", "2026-01-15T09:00:00Z", "expected a datetime, got str")
    fails("iso_to_datetime", "2026-01-15T09:00:00", "no timezone")
    fails("iso_to_datetime", "15/01/2026", "ISO 8601")
    fails("iso_to_datetime", 1768467600000, "expected text, got int")
    fails("datetime_to_epoch_ms", datetime(2026, 1, 15), "no timezone")


def test_epoch_milliseconds_both_ways() -> None:
    moment = datetime(2026, 1, 15, 9, 0, 0, 250999, tzinfo=UTC)
    assert apply("datetime_to_epoch_ms", moment) == 1768467600250
    assert apply("datetime_to_epoch_ms", datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)) == -1
    assert apply("epoch_ms_to_datetime", 1768467600250) == datetime(2026, 1, 15, 9, 0, 0, 250000, tzinfo=UTC)
    assert apply("epoch_ms_to_datetime", "1768467600250") == datetime(
        2026, 1, 15, 9, 0, 0, 250000, tzinfo=UTC
    )
    assert apply("epoch_ms_to_datetime", "") is None
    fails("epoch_ms_to_datetime", 1768467600.25, "got float")
    fails("epoch_ms_to_datetime", "1768467600.25", "whole number")
    fails("epoch_ms_to_datetime", 10**20, "out of the range")


_aware_ms = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.sampled_from([UTC, CPH])
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


@given(_aware_ms)
def test_datetime_round_trips(moment: datetime) -> None:
    assert apply("epoch_ms_to_datetime", apply("datetime_to_epoch_ms", moment)) == moment
    assert apply("iso_to_datetime", apply("datetime_to_iso", moment)) == moment


def test_dates_both_ways() -> None:
    day = date(2026, 1, 15)
    assert apply("date_to_iso", day) == "2026-01-15"
    assert apply("iso_to_date", "2026-01-15") == day
    assert apply("iso_to_date", "2026-01-15T00:00:00.000Z") == day
    assert apply("iso_to_date", day) == day
    assert apply("date_to_epoch_ms", day) == 1768435200000
    assert apply("epoch_ms_to_date", "1768435200000") == day
    assert apply("iso_to_date", "") is None
    fails("date_to_iso", datetime(2026, 1, 15, tzinfo=UTC), "expected a date, got datetime")
    fails("iso_to_date", "2026-02-30", "not a calendar date")
    fails("iso_to_date", "2026-01-15T09:00:00Z", "midnight UTC")
    fails("iso_to_date", "2026-01-15T00:00:00+01:00", "midnight UTC")
    fails("epoch_ms_to_date", 1768435200001, "not midnight UTC")
    fails("date_to_epoch_ms", "2026-01-15", "expected a date, got str")


@given(st.dates(min_value=date(1, 1, 2), max_value=date(9999, 12, 30)))
def test_date_round_trips(day: date) -> None:
    assert apply("iso_to_date", apply("date_to_iso", day)) == day
    assert apply("epoch_ms_to_date", apply("date_to_epoch_ms", day)) == day


def test_date_only() -> None:
    late = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
    assert apply("datetime_to_date", late) == date(2026, 1, 15)
    assert apply("datetime_to_date", late, timezone="Europe/Copenhagen") == date(2026, 1, 16)
    midnight = apply("date_to_datetime", date(2026, 1, 16), timezone="Europe/Copenhagen")
    assert midnight == datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
    assert apply("date_to_datetime", date(2026, 1, 16)) == datetime(2026, 1, 16, tzinfo=UTC)
    fails("datetime_to_date", datetime(2026, 1, 15), "no timezone")


# --- values -------------------------------------------------------------------------------------------------

STATUS = {"active": "Active", "paused": "Paused", "churned": "Churned"}


def test_enum_map_both_ways() -> None:
    assert apply("enum_map", "active", values=STATUS) == "Active"
    assert apply("enum_map", "Churned", values=STATUS, reverse=True) == "churned"
    assert apply("enum_map", "", values=STATUS) is None
    assert apply("enum_map", None, values=STATUS) is None
    assert apply("enum_map", "", values={"": "none", "x": "X"}) == "none"
    error = fails(
        "enum_map", "cancelled", "'cancelled' is not one of 'active', 'paused', 'churned'", values=STATUS
    )
    assert error.value == "cancelled"
    fails("enum_map", "active", "is not one of 'Active'", values=STATUS, reverse=True)
    fails("enum_map", ["active"], "is not one of", values=STATUS)


def test_enum_map_keeps_booleans_and_numbers_apart() -> None:
    flags = {"yes": True, "one": 1}
    assert apply("enum_map", True, values=flags, reverse=True) == "yes"
    assert apply("enum_map", 1, values=flags, reverse=True) == "one"
    fails("enum_map", False, "is not one of", values=flags, reverse=True)


def test_constant_default_and_empty_to_none() -> None:
    assert apply("constant", "anything", value="customer") == "customer"
    assert apply("constant", None, value="customer") == "customer"
    assert apply("constant", "x", value=None) is None
    assert apply("default", None, value="n/a") == "n/a"
    assert apply("default", "", value="n/a") == "n/a"
    assert apply("default", "given", value="n/a") == "given"
    assert apply("default", 0, value=5) == 0
    assert apply("empty_to_none", "") is None
    assert apply("empty_to_none", "x") == "x"
    assert apply("empty_to_none", 0) == 0


# --- registry, steps, pipelines -----------------------------------------------------------------------------


def test_every_transform_is_documented_and_its_inverse_is_registered() -> None:
    assert len(known()) >= 20
    for name, transform in REGISTRY.items():
        assert transform.summary, name
        sample = {
            "minor_to_decimal": {"currency": "DKK"},
            "decimal_to_minor": {"currency": "DKK"},
            "enum_map": {"values": STATUS},
            "constant": {"value": 1},
            "default": {"value": 1},
        }.get(name, {})
        inverse = transform.inverse(sample)
        for data in inverse or []:
            assert Step.load(data).name in REGISTRY


def test_invert_builds_the_other_direction() -> None:
    to_remote = [step("trim"), step("split_name")]
    assert invert(to_remote) == [step("join_name")]
    money = [step("minor_to_decimal", currency="DKK")]
    assert invert(money) == [step("decimal_to_minor", currency="DKK")]
    assert invert(invert(money)) == money
    assert invert([step("enum_map", values=STATUS)]) == [step("enum_map", values=STATUS, reverse=True)]
    dates = [step("datetime_to_date", timezone="Europe/Copenhagen"), step("date_to_epoch_ms")]
    day = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
    midnight_in_copenhagen = datetime(2026, 1, 15, 23, 0, tzinfo=UTC)
    assert run(invert(dates), run(dates, day)) == midnight_in_copenhagen


@pytest.mark.parametrize(
    "pipeline",
    [
        [step("constant", value="x")],
        [step("default", value="x")],
        [step("split_name", part="first")],
        [step("enum_map", values={"trialing": "customer", "active": "customer"})],
    ],
)
def test_invert_refuses_what_has_no_inverse(pipeline: list[Step]) -> None:
    with pytest.raises(MappingError, match="has no inverse"):
        invert(pipeline)


def test_run_applies_in_order_and_empty_is_identity() -> None:
    assert run([], " X ") == " X "
    assert run([step("trim"), step("lower"), step("default", value="none")], "  ") == "none"


def test_step_load_validates_and_dumps() -> None:
    loaded = Step.load({"name": "minor_to_decimal", "currency": "DKK"})
    assert loaded == Step("minor_to_decimal", {"currency": "DKK"})
    assert loaded.dump() == {"name": "minor_to_decimal", "currency": "DKK"}
    with pytest.raises(MappingInvalid, match="unknown currency 'ZZZ'") as caught:
        step("minor_to_decimal", currency="ZZZ")
    assert caught.value.fields == {
        "currency": ["minor_to_decimal: unknown currency 'ZZZ' (an ISO 4217 code like DKK)"]
    }
    with pytest.raises(MappingInvalid, match="not a parameter of this transform"):
        step("trim", mode="both")
    with pytest.raises(MappingInvalid, match="unknown transform 'strip'"):
        step("strip")
    with pytest.raises(MappingInvalid, match="unknown timezone"):
        step("datetime_to_date", timezone="Mars/Olympus")


def test_an_unexpected_exception_inside_a_transform_becomes_a_transform_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(value: Any, /) -> Any:
        return {}[value]

    broken = Transform("explode", explode, REGISTRY["trim"].params, lambda _p: None, True, "explodes")
    monkeypatch.setitem(REGISTRY, "explode", broken)
    with pytest.raises(TransformError) as caught:
        Step("explode").apply("key")
    assert caught.value.transform == "explode"
    assert caught.value.value == "key"
    assert "KeyError" in caught.value.reason
    assert isinstance(caught.value.__cause__, KeyError)
