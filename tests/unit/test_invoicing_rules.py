"""Invoice lines, VAT per line, discounts, totals, statuses and the credit carry-forward."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hub.domain.errors import StateConflict
from hub.domain.invoicing import (
    DANISH_VAT,
    Discount,
    InvoiceStatus,
    Line,
    LineKind,
    billable,
    format_number,
    invoice_transition,
    totals,
)

VAT = Decimal("25.00")


def line(unit: int, quantity: int = 1, discount: int = 0, rate: Decimal = VAT, **kw) -> Line:
    return Line("line", quantity, unit, rate, discount_amount=discount, **kw)


def credit(unit: int, rate: Decimal = VAT) -> Line:
    return Line("credit", 1, unit, rate, LineKind.PRORATION)


# --- one line ---------------------------------------------------------------------


def test_danish_vat_is_the_default_rate():
    assert Decimal("25.00") == DANISH_VAT


def test_a_plain_line():
    one = line(9_900, quantity=3)
    # 3 × 99.00 = 297.00; VAT 25 % = 74.25; total 371.25
    assert (one.amount, one.net_amount, one.vat_amount, one.total) == (29_700, 29_700, 7_425, 37_125)


def test_vat_is_computed_on_the_discounted_amount():
    one = line(10_000, discount=1_000)
    # net 10 000 − 1 000 = 9 000; VAT 2 250; total 11 250
    assert (one.net_amount, one.vat_amount, one.total) == (9_000, 2_250, 11_250)


def test_vat_rounds_half_away_from_zero_on_each_line():
    assert line(10).vat_amount == 3  # 2.5 → 3
    assert line(1).vat_amount == 0  # 0.25 → 0
    assert credit(-10).vat_amount == -3  # −2.5 → −3
    assert credit(-13_241).vat_amount == -3_310  # −3 310.25 → −3 310


def test_a_reduced_rate_and_a_zero_rate():
    assert line(1_000, rate=Decimal("12.50")).vat_amount == 125
    assert line(999, rate=Decimal("12.50")).vat_amount == 125  # 124.875 → 125
    zero = line(1_000, rate=Decimal("0"))
    assert (zero.vat_amount, zero.total) == (0, 1_000)


# --- totals ---------------------------------------------------------------------------


def test_totals_are_sums_of_lines_each_rounded_once():
    lines = [line(10), line(10)]
    sums = totals(lines)
    # VAT per line: 2.5 → 3, twice = 6 (VAT on the 20 øre sum would have been 5).
    assert (sums.subtotal, sums.discount, sums.vat, sums.total) == (20, 0, 6, 26)


def test_totals_with_a_discount_and_a_credit():
    lines = [line(20_000, discount=5_000), line(13_241), credit(-6_620)]
    sums = totals(lines)
    # subtotal = 20 000 + 13 241 − 6 620 = 26 621; discount 5 000
    # VAT = 3 750 (15 000 × 25 %) + 3 310 (3 310.25) − 1 655 = 5 405
    # total = 26 621 − 5 000 + 5 405 = 27 026
    assert (sums.subtotal, sums.discount, sums.vat, sums.total) == (26_621, 5_000, 5_405, 27_026)


def test_the_totals_of_no_lines_are_zero():
    sums = totals([])
    assert (sums.subtotal, sums.discount, sums.vat, sums.total) == (0, 0, 0, 0)


# --- discounts --------------------------------------------------------------------------


def test_percent_discount_rounds_once():
    assert Discount(percent_off=Decimal("10")).on(29_997) == 3_000  # 2 999.7 → 3 000
    assert Discount(percent_off=Decimal("15")).on(10_010) == 1_502  # 1 501.5 → 1 502
    assert Discount(percent_off=Decimal("100")).on(7_500) == 7_500


def test_amount_discount_never_exceeds_the_amount():
    assert Discount(amount_off=2_500).on(10_000) == 2_500
    assert Discount(amount_off=25_000).on(10_000) == 10_000


def test_nothing_is_discounted_from_nothing():
    assert Discount(percent_off=Decimal("50")).on(0) == 0
    assert Discount(amount_off=500).on(0) == 0
    assert Discount(amount_off=500).on(-1_000) == 0


# --- numbers and statuses ---------------------------------------------------------------


def test_invoice_numbers_are_zero_padded():
    assert format_number("INV-", 42) == "INV-000042"
    assert format_number("CN-", 1) == "CN-000001"
    assert format_number("", 1_234_567) == "1234567"


# Rows are actions, columns the status before; "-" is refused.
INVOICE_TABLE = """
action              draft  open           paid  void  uncollectible
finalize            open   -              -     -     -
pay                 -      paid           -     -     paid
void                void   void           -     -     void
mark_uncollectible  -      uncollectible  -     -     -
"""


def _invoice_pairs() -> list[tuple[str, str, str | None]]:
    header, *rows = [r.split() for r in INVOICE_TABLE.strip().splitlines()]
    return [
        (status, action, None if cell == "-" else cell)
        for action, *cells in rows
        for status, cell in zip(header[1:], cells, strict=True)
    ]


INVOICE_PAIRS = _invoice_pairs()


def test_the_invoice_table_covers_every_status():
    assert {status for status, _, _ in INVOICE_PAIRS} == {s.value for s in InvoiceStatus}
    assert len(INVOICE_PAIRS) == 4 * 5


@pytest.mark.parametrize(("status", "action", "expected"), INVOICE_PAIRS)
def test_invoice_transition(status, action, expected):
    if expected is None:
        with pytest.raises(StateConflict, match=f"cannot {action.replace('_', ' ')} an invoice that is"):
            invoice_transition(status, action)
    else:
        assert invoice_transition(status, action) == InvoiceStatus(expected)


# --- billable(): an invoice never goes below zero ------------------------------------------


def test_charges_and_a_credit_that_fits_are_all_invoiced():
    charge, small = line(10_000), credit(-4_000)
    chosen, carried = billable([small, charge])
    assert chosen == [charge, small]  # charges first, then the credits taken
    assert carried == []
    assert totals(chosen).total == 7_500  # (10 000 − 4 000) × 1.25


def test_a_credit_that_brings_the_total_to_exactly_zero_is_taken():
    charge, exact = line(10_000), credit(-10_000)
    chosen, carried = billable([charge, exact])
    assert totals(chosen).total == 0
    assert carried == []


def test_credits_are_taken_largest_first_and_the_one_that_does_not_fit_is_split():
    charge = line(10_000)  # 12 500 with VAT
    big, middle, small = credit(-7_000), credit(-4_000), credit(-2_000)  # −8 750, −5 000, −2 500
    chosen, carried = billable([small, charge, middle, big])
    # 12 500 − 8 750 = 3 750 left; of the middle credit, −3 000 (−3 750 with VAT) fits exactly.
    assert chosen[:2] == [charge, big]
    assert [(c.unit_amount, c.total) for c in chosen[2:]] == [(-3_000, -3_750)]
    # The rest of the middle credit (−4 000 + 3 000 = −1 000) and the small one wait.
    assert [(c.unit_amount, c.description) for c in carried] == [(-1_000, "credit"), (-2_000, "credit")]
    assert totals(chosen).total == 0


def test_a_split_credit_keeps_the_total_at_or_above_zero_despite_vat_rounding():
    # Room of 1 øre: −1 øre of credit has VAT −0.25 → 0, total −1: fits. −2 øre would be −3 with VAT.
    chosen, carried = billable([line(1), credit(-10)])
    assert [(c.unit_amount, c.total) for c in chosen] == [(1, 1), (-1, -1)]
    assert [c.unit_amount for c in carried] == [-9]
    # Room of 4 øre (3 + VAT 0.75 → 1): −3 øre costs −4 (VAT −0.75 → −1) and fits;
    # −4 øre would cost −5 (VAT −1).
    chosen, carried = billable([line(3), credit(-10)])
    assert [(c.unit_amount, c.total) for c in chosen] == [(3, 4), (-3, -4)]
    assert [c.unit_amount for c in carried] == [-7]


def test_a_credit_line_with_a_quantity_is_split_by_its_net_amount():
    chosen, carried = billable([line(500, rate=Decimal("0")), Line("2 × credit", 2, -400, Decimal("0"))])
    assert [(c.quantity, c.unit_amount) for c in chosen] == [(1, 500), (1, -500)]
    assert [(c.quantity, c.unit_amount) for c in carried] == [(1, -300)]  # −800 + 500


def test_an_invoice_of_nothing_takes_no_part_of_a_credit():
    free, owed = line(0), credit(-1_000)
    chosen, carried = billable([free, owed])
    assert chosen == [free]
    assert carried == [owed]


def test_credits_without_charges_are_all_carried():
    only = credit(-500)
    chosen, carried = billable([only])
    assert chosen == []
    assert carried == [only]


def test_zero_lines_count_as_charges():
    free = line(0)
    chosen, carried = billable([free])
    assert (chosen, carried) == ([free], [])
