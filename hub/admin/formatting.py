"""Numbers, money and times as people read them, in their locale (Babel)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision

DEFAULT_LOCALE = "da_DK"
DASH = "–"


def money(minor: int | None, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """``123450, "DKK", "da_DK"`` → ``1.234,50 kr.``"""
    if minor is None:
        return DASH
    amount = Decimal(minor).scaleb(-get_currency_precision(currency))
    return format_currency(amount, currency, locale=locale)


def percent(rate: Decimal | None, locale: str = DEFAULT_LOCALE) -> str:
    """A rate such as ``0.0526`` → ``5,26 %``; not defined → a dash."""
    if rate is None:
        return DASH
    return format_percent(rate, format="#,##0.00\u00a0%", locale=locale)


def ratio(value: Decimal | None, locale: str = DEFAULT_LOCALE) -> str:
    return DASH if value is None else format_decimal(value, format="#,##0.00", locale=locale)


def when(moment: datetime | None, locale: str = DEFAULT_LOCALE) -> str:
    return "never" if moment is None else format_datetime(moment, format="short", tzinfo=None, locale=locale)
