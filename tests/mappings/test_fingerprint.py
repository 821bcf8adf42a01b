"""Fingerprints: stable, short, and equal exactly for values that mean the same."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.engine import EMPTY, fingerprint
from mappings.transforms import step


class Colour(StrEnum):
    RED = "red"


def test_the_format_is_sixteen_hex_digits_and_stable_across_releases() -> None:
    # Stored on every link: changing the normalisation would make every field look changed once.
    assert fingerprint("ada@example.com") == "84aea5dfcef59b52"
    assert fingerprint(None) == EMPTY == "7376b2cbfa0ad26e"
    assert len(fingerprint(12345)) == 16


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (None, ""),
        ("123.45", Decimal("123.45")),
        (step("minor_to_decimal", currency="DKK").apply(12345), Decimal("123.45")),
        (12345, "12345"),
        (Decimal(12345), 12345),
        (True, "true"),
        (False, "false"),
        (Decimal("-0"), 0),
        (Decimal("-0.00"), Decimal("0.00")),
        (1.5, Decimal("1.5")),
        (Colour.RED, "red"),
        (unicodedata.normalize("NFD", "Søren é"), unicodedata.normalize("NFC", "Søren é")),
        (
            datetime(2026, 1, 15, 10, 0, tzinfo=timezone(timedelta(hours=1))),
            datetime(2026, 1, 15, 9, 0, tzinfo=UTC),
        ),
        (date(2026, 1, 15), "2026-01-15"),
        ({"b": 1, "a": 2}, {"a": 2, "b": 1}),
        ((1, "x"), [1, "x"]),
        (["", None], [None, ""]),
    ],
)
def test_values_that_mean_the_same_have_the_same_fingerprint(left: Any, right: Any) -> None:
    assert fingerprint(left) == fingerprint(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Ada", "ada"),  # case is the mapping's business (lower)
        ("Ada", " Ada"),  # so is whitespace (trim)
        ("0800", "800"),  # text is never read as a number: a postcode is not 800
        ("123.40", "123.4"),
        (Decimal("123.40"), Decimal("123.4")),  # a Decimal keeps its scale, like the text it becomes
        (0, None),
        (False, None),
        (" ", ""),
        (["a", "b"], ["b", "a"]),
        (["a", "b"], '["a","b"]'),
        (1, True),
    ],
)
def test_values_that_differ_have_different_fingerprints(left: Any, right: Any) -> None:
    assert fingerprint(left) != fingerprint(right)


def test_unknown_types_are_refused_rather_than_hashed_by_repr() -> None:
    with pytest.raises(TypeError, match="cannot fingerprint a object"):
        fingerprint(object())


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(), lambda inner: st.lists(inner, max_size=3)
    )
)
def test_fingerprints_are_deterministic(value: Any) -> None:
    assert fingerprint(value) == fingerprint(value)
    assert len(fingerprint(value)) == 16
