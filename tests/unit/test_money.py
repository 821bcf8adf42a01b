"""Money: integer minor units, one rounding rule (half away from zero)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub.domain.money import (
    divide,
    is_currency,
    minor_unit_digits,
    percent_of,
    round_half_up,
    to_decimal_string,
)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 3),  # 2.5 → 3 (banker's rounding would give 2)
        (7, 2, 4),  # 3.5 → 4
        (-5, 2, -3),  # −2.5 → −3: away from zero, symmetric
        (7, 3, 2),  # 2.33 → 2
        (8, 3, 3),  # 2.67 → 3
        (-8, 3, -3),  # −2.67 → −3
        (-7, 3, -2),  # −2.33 → −2
        (0, 7, 0),
        (10_000, 3, 3_333),  # a quarterly 100.00 is 33.33 a month
        (100_000, 12, 8_333),  # 8 333.33 → 8 333
    ],
)
def test_divide_rounds_half_away_from_zero(numerator, denominator, expected):
    assert divide(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -1])
def test_divide_needs_a_positive_denominator(denominator):
    with pytest.raises(ValueError):
        divide(10, denominator)


@pytest.mark.parametrize(
    ("amount", "percent", "expected"),
    [
        (10_000, "25.00", 2_500),
        (10, "25", 3),  # 2.5 → 3
        (2, "25", 1),  # 0.5 → 1
        (1, "25", 0),  # 0.25 → 0
        (6, "25", 2),  # 1.5 → 2 (banker's would also give 2)
        (14, "25", 4),  # 3.5 → 4
        (-10, "25", -3),  # −2.5 → −3
        (-2, "25", -1),  # −0.5 → −1
        (13_241, "25", 3_310),  # 3 310.25 → 3 310
        (10, "12.5", 1),  # 1.25 → 1
        (12, "12.5", 2),  # 1.5 → 2
        (9_999, "0", 0),
        (99_999, "33.33", 33_330),  # 33 329.6667 → 33 330
    ],
)
def test_percent_of_rounds_once_half_away_from_zero(amount, percent, expected):
    assert percent_of(amount, Decimal(percent)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2.5", 3), ("-2.5", -3), ("2.4999", 2), ("-0.5", -1), ("0.49", 0), ("3", 3)],
)
def test_round_half_up(value, expected):
    assert round_half_up(Decimal(value)) == expected


def test_currencies_and_their_minor_units():
    assert is_currency("DKK") and is_currency("EUR")
    assert not is_currency("XXQ")
    assert minor_unit_digits("DKK") == 2
    assert minor_unit_digits("JPY") == 0
    assert to_decimal_string(12_345, "DKK") == "123.45"
    assert to_decimal_string(5, "DKK") == "0.05"
    assert to_decimal_string(-250, "EUR") == "-2.50"
    assert to_decimal_string(500, "JPY") == "500"
