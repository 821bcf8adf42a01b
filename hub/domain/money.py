"""Money arithmetic in integer minor units.

Rounding rule (one rule, everywhere): a result that falls between two minor
units is rounded half away from zero, i.e. 0.5 øre becomes 1 øre and -0.5 øre
becomes -1 øre. Every rounding happens once per invoice line (never on sums),
so an invoice's totals are exact sums of its lines.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision, list_currencies

_CURRENCIES = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in _CURRENCIES


def minor_unit_digits(currency: str) -> int:
    """Digits after the decimal point: 2 for DKK (øre), 0 for ISK and JPY."""
    return get_currency_precision(currency)


def round_half_up(value: Decimal) -> int:
    """Round to a whole minor unit, half away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def divide(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, in integers only."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return sign * quotient


def percent_of(amount: int, percent: Decimal) -> int:
    """``percent`` % of ``amount``, rounded once."""
    return round_half_up(Decimal(amount) * percent / Decimal(100))


def to_decimal_string(amount: int, currency: str) -> str:
    """12345 DKK -> '123.45' (for display and for vendors that want decimals)."""
    digits = minor_unit_digits(currency)
    return str((Decimal(amount) / (Decimal(10) ** digits)).quantize(Decimal(1).scaleb(-digits)))
