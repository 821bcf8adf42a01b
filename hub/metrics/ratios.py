"""How every rate, ratio and average is rounded, and what a division by zero gives.

* Rates and ratios are :class:`~decimal.Decimal` values with exactly four
  decimals (``0.0526`` is 5.26 %), computed exactly from integers and rounded
  once, half away from zero (the rule of :mod:`hub.domain.money`). They are
  fractions, not percentages: multiply by 100 to show a percentage. In
  ``to_dict()`` they become strings (``"0.0526"``) so no float ever rounds
  them again.
* Money (MRR, ARR, ARPA, LTV) stays integer minor units; an average is rounded
  once to the minor unit, half away from zero.
* A division by zero gives ``None`` (``null`` in JSON): "not defined", never 0
  and never infinity. A rate that is not defined is not a rate of 0 %.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hub.domain.money import divide

DECIMALS = 4
_SCALE = 10**DECIMALS


def decimal(value: Fraction) -> Decimal:
    """``value`` rounded to four decimals, half away from zero."""
    return Decimal(divide(value.numerator * _SCALE, value.denominator)).scaleb(-DECIMALS)


def rate(value: Fraction | None) -> Decimal | None:
    """:func:`decimal`, where ``None`` (not defined) stays ``None``."""
    return None if value is None else decimal(value)


def fraction(numerator: int | Fraction, denominator: int | Fraction) -> Fraction | None:
    """``numerator / denominator`` exactly, or ``None`` when the denominator is 0."""
    if denominator == 0:
        return None
    return Fraction(numerator) / Fraction(denominator)


def money(value: Fraction | None) -> int | None:
    """An exact amount rounded to the minor unit, half away from zero."""
    if value is None:
        return None
    return divide(value.numerator, value.denominator)
