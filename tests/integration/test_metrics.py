"""Every metric against a small history built through the service layer and computed by hand.

The history (DKK, all at 10:00 UTC; plans: M100 monthly 100.00 kr, M150
monthly 150.00 kr, M200 monthly 200.00 kr, Y yearly 1,200.06 kr, Y600 yearly
600.00 kr, Q quarterly 300.00 kr; amounts below in øre):

=========== ====== ========================================= ============== =========
when        who    what                                      movement       MRR moved
=========== ====== ========================================= ============== =========
2025-12-05  Bo     subscribes to Y: 120,006 / 12 = 10,000.5  new            +10,001
                   → 10,001 (half up)
2025-12-10  Anna   subscribes to M100                        new            +10,000
2026-01-05  Carl   subscribes to Q: 30,000 / 3               new            +10,000
2026-01-08  Dorte  subscribes to M100 with a *once* 50 %     new            +10,000
                   coupon (not in MRR)
2026-01-20  Emil   subscribes to M100 with a 14-day trial    (none: trial)
2026-02-03  Emil   trial ends (billing run)                  new            +10,000
2026-02-12  Anna   upgrades M100 → M150                      expansion      +5,000
2026-02-15  Dorte  cancels at period end (ends 2026-03-08)   (none yet)
2026-02-20  Emil   pauses                                    paused         −10,000
2026-02-25  Carl   cancels now                               churned        −10,000
2026-03-02  Frida  subscribes to M200 with a *forever* 25 %  new            +15,000
                   coupon: 20,000 × 0.75
2026-03-03  Bo     downgrades Y → Y600: 60,000 / 12 = 5,000  contraction    −5,001
2026-03-08  Dorte  the cancellation takes effect (billing    churned        −10,000
                   run on 2026-03-09, dated at period end)
2026-03-10  Emil   resumes                                   resumed        +10,000
2026-03-25  Dorte  subscribes again to M100                  reactivation   +10,000
=========== ====== ========================================= ============== =========

Plus one EUR customer (Gustav, 50.00 € monthly from 2026-02-10) who must never
show up in DKK figures.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from hub.domain.errors import InvalidRequest
from hub.metrics import CohortPoint, cohort_retention, compute_series
from hub.metrics.periods import Interval, boundaries
from hub.metrics.ratios import fraction, rate
from hub.services import catalog, subscriptions
from hub.services.billing import RunBilling, run_billing
from hub.store.models import Customer, MrrMovement
from tests import factories

JAN, FEB, MAR, APR = (datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3, 4))


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00+00:00")


@pytest.fixture
def history(hub, clock):
    def on(day: str) -> None:
        """Move the clock to ``day`` and let the billing run do whatever is due by then."""
        clock.set(at(day))
        run_billing(RunBilling(at=at(day)), hub.uow())

    clock.set(at("2025-12-01"))
    m100 = factories.plan(hub, 10_000, name="M100")
    m150 = factories.plan(hub, 15_000, name="M150")
    m200 = factories.plan(hub, 20_000, name="M200")
    yearly = factories.plan(hub, 120_006, "year", name="Y")
    y600 = factories.plan(hub, 60_000, "year", name="Y600")
    quarterly = factories.plan(hub, 30_000, "quarter", name="Q")
    eur = factories.plan(hub, 5_000, name="EUR monthly", currency="EUR")
    for code, duration, percent in [("WELCOME50", "once", "50"), ("LOYAL25", "forever", "25")]:
        catalog.create_coupon(
            catalog.CreateCoupon(code=code, name=code, duration=duration, percent_off=Decimal(percent)),
            hub.uow(),
        )
    anna, bo, carl, dorte, emil, frida = (
        factories.customer(hub, name) for name in ("Anna", "Bo", "Carl", "Dorte", "Emil", "Frida")
    )
    gustav = factories.customer(hub, "Gustav", currency="EUR", country="DE")

    on("2025-12-05")
    bo_sub = factories.subscribe(hub, bo.id, yearly.id)
    on("2025-12-10")
    anna_sub = factories.subscribe(hub, anna.id, m100.id)
    on("2026-01-05")
    carl_sub = factories.subscribe(hub, carl.id, quarterly.id)
    on("2026-01-08")
    dorte_sub = factories.subscribe(hub, dorte.id, m100.id, coupon_code="WELCOME50")
    on("2026-01-20")
    emil_sub = factories.subscribe(hub, emil.id, m100.id, trial_days=14)
    on("2026-02-03")  # Emil's trial converts
    on("2026-02-10")
    factories.subscribe(hub, gustav.id, eur.id)
    on("2026-02-12")
    subscriptions.change_plan(subscriptions.ChangePlan(anna_sub, m150.id), hub.uow())
    on("2026-02-15")
    subscriptions.cancel_subscription(
        subscriptions.CancelSubscription(dorte_sub, "too_expensive", at_period_end=True), hub.uow()
    )
    on("2026-02-20")
    subscriptions.pause_subscription(subscriptions.PauseSubscription(emil_sub), hub.uow())
    on("2026-02-25")
    subscriptions.cancel_subscription(subscriptions.CancelSubscription(carl_sub, "unused"), hub.uow())
    on("2026-03-02")
    factories.subscribe(hub, frida.id, m200.id, coupon_code="LOYAL25")
    on("2026-03-03")
    subscriptions.change_plan(subscriptions.ChangePlan(bo_sub, y600.id), hub.uow())
    on("2026-03-09")  # Dorte's cancellation took effect at her period end, 2026-03-08
    on("2026-03-10")
    subscriptions.resume_subscription(subscriptions.ResumeSubscription(emil_sub), hub.uow())
    on("2026-03-25")
    factories.subscribe(hub, dorte.id, m100.id)
    on("2026-03-31")
    return hub


def test_the_ledger_holds_the_movements_of_the_story(history):
    """The metrics read this ledger; check it first, so a failure below is about the metrics."""
    with history.session_factory() as session:
        names = {c: n for c, n in session.execute(select(Customer.id, Customer.name))}
        rows = session.execute(
            select(MrrMovement.occurred_at, MrrMovement.customer_id, MrrMovement.kind, MrrMovement.amount)
            .where(MrrMovement.currency == "DKK")
            .order_by(MrrMovement.occurred_at)
        ).all()
    assert [(t.date().isoformat(), names[c], kind, amount) for t, c, kind, amount in rows] == [
        ("2025-12-05", "Bo", "new", 10_001),
        ("2025-12-10", "Anna", "new", 10_000),
        ("2026-01-05", "Carl", "new", 10_000),
        ("2026-01-08", "Dorte", "new", 10_000),
        ("2026-02-03", "Emil", "new", 10_000),
        ("2026-02-12", "Anna", "expansion", 5_000),
        ("2026-02-20", "Emil", "paused", -10_000),
        ("2026-02-25", "Carl", "churned", -10_000),
        ("2026-03-02", "Frida", "new", 15_000),
        ("2026-03-03", "Bo", "contraction", -5_001),
        ("2026-03-08", "Dorte", "churned", -10_000),
        ("2026-03-10", "Emil", "resumed", 10_000),
        ("2026-03-25", "Dorte", "reactivation", 10_000),
    ]


def series(hub, start=JAN, end=APR, interval="month", currency="DKK"):
    with hub.session_factory() as session:
        return compute_series(session, start=start, end=end, interval=interval, currency=currency)


def test_monthly_series_matches_the_hand_computed_figures(history):
    jan, feb, mar = series(history).buckets

    # Opening, 2026-01-01: Bo 10,001 + Anna 10,000 = 20,001; 2 active, none paused.
    assert (jan.start, jan.end) == (JAN, FEB)
    assert (jan.mrr_start, jan.arr_start) == (20_001, 240_012)  # ARR = 20,001 × 12
    assert (jan.active_customers_start, jan.paused_customers_start) == (2, 0)

    # January: Carl +10,000 and Dorte +10,000 new (the once coupon is not in MRR).
    assert jan.movements.to_dict() == {
        "new": 20_000, "expansion": 0, "contraction": 0, "churned": 0,
        "reactivation": 0, "paused": 0, "resumed": 0, "net": 20_000,
    }  # fmt: skip
    assert jan.counts.new == 2 and jan.counts.churned == 0
    assert jan.mrr_end == 40_001  # 20,001 + 20,000; Emil's trial is not in MRR
    assert jan.arr_end == 480_012  # 40,001 × 12
    assert (jan.active_customers_end, jan.paused_customers_end) == (4, 0)
    assert jan.customer_churn_rate == Decimal("0.0000")  # 0 ÷ (2 on the books + 2 new + 0 reactivated)
    # Revenue retention: the starting customers are Bo (s 10,001) and Anna (s 10,000),
    # both unchanged at the end; Carl's and Dorte's new MRR is not retention.
    assert jan.gross_revenue_churn_rate == Decimal("0.0000")  # (0 + 0) lost ÷ 20,001
    assert jan.net_revenue_retention == Decimal("1.0000")  # (10,001 + 10,000) ÷ 20,001
    assert jan.arpa == 10_000  # 40,001 ÷ 4 = 10,000.25 → 10,000
    assert jan.ltv is None  # no churn: no churn rate to divide by
    assert jan.quick_ratio is None  # 20,000 ÷ (0 + 0): not defined
    assert jan.new_vs_churned_ratio is None  # (2 + 0) ÷ 0: not defined
    assert jan.months == Decimal("1.0000")

    # February: Emil's trial converts (+10,000 new), Anna upgrades (+5,000),
    # Emil pauses (−10,000 paused, not churn), Carl cancels now (−10,000 churned).
    assert feb.movements.to_dict() == {
        "new": 10_000, "expansion": 5_000, "contraction": 0, "churned": 10_000,
        "reactivation": 0, "paused": 10_000, "resumed": 0, "net": -5_000,
    }  # fmt: skip
    assert (feb.counts.new, feb.counts.expansion, feb.counts.churned, feb.counts.paused) == (1, 1, 1, 1)
    assert feb.mrr_start == 40_001
    assert feb.mrr_end == 35_001  # 40,001 + 10,000 + 5,000 − 10,000 − 10,000
    assert feb.arr_end == 420_012  # 35,001 × 12
    # Active: 4 + Emil − Emil (paused) − Carl = 3 (Anna, Bo, Dorte); Emil is paused.
    assert (feb.active_customers_end, feb.paused_customers_end) == (3, 1)
    assert feb.customer_churn_rate == Decimal("0.2000")  # 1 ÷ (4 on the books + 1 new + 0) = 0.2
    # Starting customers: Bo 10,001, Anna 10,000, Carl 10,000, Dorte 10,000 (Σ s = 40,001).
    # At the end: Bo 10,001, Anna 15,000, Carl 0, Dorte 10,000 (her cancel is not effective
    # yet). Emil joined and paused within February: never a starting customer, not counted.
    # Lost = max(0, s − e) per customer = Carl's 10,000; Anna's expansion offsets nobody else.
    assert feb.gross_revenue_churn_rate == Decimal("0.2500")  # 10,000 ÷ 40,001 = 0.249993…
    # NRR = (10,001 + 15,000 + 0 + 10,000) ÷ 40,001 = 35,001 ÷ 40,001 = 0.874997…
    assert feb.net_revenue_retention == Decimal("0.8750")
    assert feb.arpa == 11_667  # 35,001 ÷ 3 = 11,667
    assert feb.ltv == 58_335  # ARPA 11,667 ÷ (0.2 per month) = 35,001 × 5 ÷ 3 = 58,335
    assert feb.quick_ratio == Decimal("1.5000")  # (10,000 + 5,000 + 0) ÷ (10,000 + 0)
    assert feb.new_vs_churned_ratio == Decimal("1.0000")  # (1 new + 0 reactivated) ÷ 1 churned

    # March: Frida +15,000 new (forever coupon: 20,000 × 0.75), Bo −5,001
    # contraction, Dorte −10,000 churned (at her period end), Emil +10,000
    # resumed, Dorte +10,000 reactivation.
    assert mar.movements.to_dict() == {
        "new": 15_000, "expansion": 0, "contraction": 5_001, "churned": 10_000,
        "reactivation": 10_000, "paused": 0, "resumed": 10_000, "net": 19_999,
    }  # fmt: skip
    assert mar.mrr_start == 35_001
    assert mar.mrr_end == 55_000  # 35,001 + 15,000 − 5,001 − 10,000 + 10,000 + 10,000
    # = Anna 15,000 + Bo 5,000 + Emil 10,000 + Frida 15,000 + Dorte 10,000.
    assert mar.arr_end == 660_000
    assert (mar.active_customers_start, mar.paused_customers_start) == (3, 1)
    assert (mar.active_customers_end, mar.paused_customers_end) == (5, 0)
    assert mar.customer_churn_rate == Decimal("0.1667")  # 1 ÷ (4 on the books + 1 new + 1 reactivated)
    # Starting customers (in MRR on March 1st): Bo 10,001, Anna 15,000, Dorte 10,000 (Σ s =
    # 35,001). Emil is paused at the start (MRR 0), so his resumed 10,000 is not retention,
    # nor is Frida's new 15,000. Dorte churned and came back within March: she counts with
    # what she pays at the end, 10,000. At the end: Bo 5,000, Anna 15,000, Dorte 10,000.
    # Lost = Bo 10,001 − 5,000 = 5,001 (Dorte: max(0, 10,000 − 10,000) = 0).
    assert mar.gross_revenue_churn_rate == Decimal("0.1429")  # 5,001 ÷ 35,001 = 0.142881…
    # NRR = (5,000 + 15,000 + 10,000) ÷ 35,001 = 30,000 ÷ 35,001 = 0.857118…
    # (= (MRR end 55,000 − Emil 10,000 − Frida 15,000) ÷ 35,001)
    assert mar.net_revenue_retention == Decimal("0.8571")
    assert mar.arpa == 11_000  # 55,000 ÷ 5
    assert mar.ltv == 66_000  # 11,000 ÷ (1/6 per month)
    assert mar.quick_ratio == Decimal("1.6666")  # (15,000 + 0 + 10,000) ÷ (10,000 + 5,001) = 1.666555…
    assert mar.new_vs_churned_ratio == Decimal("2.0000")  # (1 new + 1 reactivated) ÷ 1 churned


def test_period_totals_apply_the_same_definitions_to_the_whole_period(history):
    totals = series(history).totals
    assert (totals.start, totals.end, totals.months) == (JAN, APR, Decimal("3.0000"))
    assert (totals.mrr_start, totals.mrr_end) == (20_001, 55_000)
    assert totals.movements.to_dict() == {
        "new": 45_000,  # 20,000 + 10,000 + 15,000
        "expansion": 5_000,
        "contraction": 5_001,
        "churned": 20_000,  # Carl 10,000 + Dorte 10,000
        "reactivation": 10_000,
        "paused": 10_000,
        "resumed": 10_000,
        "net": 34_999,  # 55,000 − 20,001
    }
    assert (totals.counts.new, totals.counts.churned, totals.counts.reactivation) == (4, 2, 1)
    assert totals.customer_churn_rate == Decimal("0.2857")  # 2 ÷ (2 + 4 new + 1 reactivated) = 0.285714…
    # Revenue retention over the quarter follows the customers in MRR on January 1st,
    # Bo (s 10,001) and Anna (s 10,000), to April 1st: Bo 5,000 (contraction), Anna 15,000
    # (expansion). Carl joined in January and churned in February, Dorte joined, churned
    # and came back, Emil joined, paused and resumed, Frida joined: none of them is a
    # starting customer, so neither their churn nor their MRR enters the rates.
    # Lost = max(0, 10,001 − 5,000) + max(0, 10,000 − 15,000) = 5,001 + 0 (Anna's
    # expansion does not offset Bo's contraction).
    assert totals.gross_revenue_churn_rate == Decimal("0.2500")  # 5,001 ÷ 20,001 = 0.250037…
    # NRR = (5,000 + 15,000) ÷ 20,001 = 20,000 ÷ 20,001 = 0.999950…
    # (= (MRR end 55,000 − Dorte 10,000 − Emil 10,000 − Frida 15,000 − Carl 0) ÷ 20,001)
    assert totals.net_revenue_retention == Decimal("1.0000")
    # The movement-based formula this replaces counted Carl's and Dorte's churn against
    # January's two customers: (20,001 + 5,000 − 5,001 − 20,000) ÷ 20,001 = 0 NRR and
    # (20,000 + 5,001) ÷ 20,001 = 1.25 gross revenue churn.
    assert totals.arpa == 11_000  # 55,000 ÷ 5
    assert totals.ltv == 115_500  # 11,000 ÷ ((2/7) ÷ 3 months) = 11,000 × 21 ÷ 2
    assert totals.quick_ratio == Decimal("2.3999")  # (45,000 + 5,000 + 10,000) ÷ (20,000 + 5,001) = 2.399904…
    assert totals.new_vs_churned_ratio == Decimal("2.5000")  # (4 + 1) ÷ 2


def test_the_mrr_roll_forward_holds_for_every_interval(history):
    for interval in ("month", "week", "day"):
        result = series(history, start=datetime(2025, 11, 20, tzinfo=UTC), end=APR, interval=interval)
        assert result.buckets[0].start == result.start and result.buckets[-1].end == result.end
        for before, after in zip(result.buckets, result.buckets[1:], strict=False):
            assert before.end == after.start
            assert before.mrr_end == after.mrr_start
            assert before.active_customers_end == after.active_customers_start
        for bucket in [*result.buckets, result.totals]:
            m = bucket.movements
            assert bucket.mrr_end == (
                bucket.mrr_start + m.new + m.expansion + m.reactivation + m.resumed
                - m.contraction - m.churned - m.paused
            )  # fmt: skip
            assert bucket.mrr_end == bucket.mrr_start + m.net
        assert result.buckets[0].mrr_start == 0
        assert result.totals.mrr_end == result.buckets[-1].mrr_end == 55_000
        assert sum(b.movements.new for b in result.buckets) == result.totals.movements.new == 65_001


def test_weekly_buckets_start_on_monday_and_are_cut_at_the_period(history):
    # 2026-02-18 is a Wednesday: the first week is cut there, the next starts Monday 23rd.
    result = series(history, start=datetime(2026, 2, 18, tzinfo=UTC), end=MAR, interval="week")
    assert [(b.start.date().isoformat(), b.end.date().isoformat()) for b in result.buckets] == [
        ("2026-02-18", "2026-02-23"),
        ("2026-02-23", "2026-03-01"),
    ]
    first, second = result.buckets
    assert first.mrr_start == 55_001  # 40,001 + Emil 10,000 + Anna 5,000
    assert first.movements.paused == 10_000 and first.movements.churned == 0  # Emil, 20th
    assert second.movements.churned == 10_000  # Carl, 25th
    assert (first.mrr_end, second.mrr_end) == (45_001, 35_001)  # − Emil's 10,000, − Carl's 10,000
    assert second.customer_churn_rate == Decimal("0.2000")  # 1 ÷ 5 (Anna, Bo, Carl, Dorte, paused Emil)
    # First week: Emil, in MRR at the start, is paused at the end: left out of both sides.
    # (10,001 + 15,000 + 10,000 + 10,000) ÷ (10,001 + 15,000 + 10,000 + 10,000) = 45,001 ÷ 45,001.
    assert (first.net_revenue_retention, first.gross_revenue_churn_rate) == (
        Decimal("1.0000"),
        Decimal("0.0000"),
    )
    # Second week: Emil is paused at the start (not in MRR); Carl churns.
    assert second.net_revenue_retention == Decimal("0.7778")  # 35,001 ÷ 45,001 = 0.777782…
    assert second.gross_revenue_churn_rate == Decimal("0.2222")  # 10,000 ÷ 45,001 = 0.222217…
    assert second.months == Decimal("0.1971")  # 6 days ÷ 30.4375 = 0.197125…
    # LTV = ARPA ÷ (churn rate ÷ months) = (35,001 ÷ 3) × (6 ÷ 30.4375) ÷ (1 ÷ 5)
    #     = 35,001 × 6 × 5 ÷ (3 × 30.4375) = 11,499.30…
    assert second.ltv == 11_499


def test_revenue_retention_counts_expansion_and_leaves_pauses_out(history):
    # One bucket, 2026-02-10 to 2026-02-24. In MRR at the start: Bo 10,001, Anna 10,000,
    # Carl 10,000, Dorte 10,000 and Emil 10,000 (MRR start 50,001). Inside: Anna upgrades
    # (+5,000 expansion), Emil pauses (−10,000 paused). Carl's churn (25th) is after the end.
    result = series(history, start=datetime(2026, 2, 10, tzinfo=UTC), end=datetime(2026, 2, 24, tzinfo=UTC))
    (only,) = result.buckets
    assert (only.mrr_start, only.mrr_end) == (50_001, 45_001)
    assert (only.movements.expansion, only.movements.paused) == (5_000, 10_000)
    # Emil is paused at the end: neither retained nor lost, so out of both sums.
    # NRR = (Bo 10,001 + Anna 15,000 + Carl 10,000 + Dorte 10,000)
    #     ÷ (Bo 10,001 + Anna 10,000 + Carl 10,000 + Dorte 10,000) = 45,001 ÷ 40,001 = 1.124996…
    assert only.net_revenue_retention == Decimal("1.1250")
    assert only.gross_revenue_churn_rate == Decimal("0.0000")  # nobody lost MRR: 0 ÷ 40,001
    # (Counting Emil as not retained would give 45,001 ÷ 50,001 = 0.9000 NRR and
    # 10,000 ÷ 50,001 = 0.2000 gross revenue churn: a pause counted as churn.)
    assert result.totals.net_revenue_retention == only.net_revenue_retention  # one bucket = the period


def by_customer(rows, start, end):
    """NRR and gross revenue churn of [start, end) straight from the definition, customer by customer.

    s, e: each customer's MRR at start and end (sum of their movements before it). The
    starting customers have s > 0 and are not paused at the end (their last movement
    before the end is not ``paused``). NRR = Σ e ÷ Σ s; gross revenue churn = Σ max(0, s − e) ÷ Σ s.
    """
    s, e, last = {}, {}, {}
    for occurred_at, customer, kind, amount in rows:
        if occurred_at < start:
            s[customer] = s.get(customer, 0) + amount
        if occurred_at < end:
            e[customer] = e.get(customer, 0) + amount
            last[customer] = kind
    starting = [c for c, mrr in s.items() if mrr > 0 and last[c] != "paused"]
    base = sum(s[c] for c in starting)
    retained = sum(e[c] for c in starting)
    lost = sum(max(0, s[c] - e[c]) for c in starting)
    return rate(fraction(retained, base)), rate(fraction(lost, base))


def test_revenue_retention_of_every_bucket_matches_a_customer_by_customer_count(history):
    with history.session_factory() as session:
        rows = session.execute(
            select(MrrMovement.occurred_at, MrrMovement.customer_id, MrrMovement.kind, MrrMovement.amount)
            .where(MrrMovement.currency == "DKK")
            .order_by(MrrMovement.occurred_at, MrrMovement.id)
        ).all()
    rows = [(t.replace(tzinfo=UTC) if t.tzinfo is None else t, c, k, a) for t, c, k, a in rows]
    for start, interval in [(datetime(2025, 11, 20, tzinfo=UTC), "month"), (JAN, "week"), (FEB, "day")]:
        result = series(history, start=start, end=APR, interval=interval)
        for bucket in [*result.buckets, result.totals]:
            found = (bucket.net_revenue_retention, bucket.gross_revenue_churn_rate)
            assert found == by_customer(rows, bucket.start, bucket.end), (interval, bucket.start)


def test_a_movement_at_a_boundary_belongs_to_the_bucket_it_opens(history):
    # Dorte's churn is dated exactly at her period end, 2026-03-08T10:00 UTC.
    boundary = at("2026-03-08")
    before = series(history, start=MAR, end=boundary, interval="month").totals
    after = series(history, start=boundary, end=APR, interval="month").totals
    assert before.movements.churned == 0 and after.movements.churned == 10_000


def test_currencies_are_never_mixed(history):
    eur = series(history, start=FEB, end=MAR, currency="EUR").buckets[0]
    assert (eur.mrr_start, eur.movements.new, eur.mrr_end, eur.active_customers_end) == (0, 5_000, 5_000, 1)
    assert eur.net_revenue_retention is None  # no MRR at start: not defined
    assert eur.gross_revenue_churn_rate is None
    assert eur.customer_churn_rate == Decimal("0.0000")  # 0 ÷ (0 + 1 new)
    dkk = series(history, start=FEB, end=MAR).buckets[0]
    assert dkk.movements.new == 10_000  # Emil only; Gustav's euros are not here


def test_cohort_retention_by_start_month(history):
    with history.session_factory() as session:
        result = cohort_retention(session, start=datetime(2025, 12, 1, tzinfo=UTC), end=APR, currency="DKK")

    def table(cohort):
        return [(p.age, p.as_of.date().isoformat(), p.retained_customers, p.customer_retention, p.mrr,
                 p.revenue_retention) for p in cohort.points]  # fmt: skip

    dec, jan, feb, mar = result.cohorts
    assert [c.month for c in result.cohorts] == [
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
        MAR.date(),
    ]
    # December: Bo 10,001 + Anna 10,000; nobody churns. MRR: +5,000 (Anna, Feb), −5,001 (Bo, Mar).
    assert (dec.customers, dec.starting_mrr) == (2, 20_001)
    assert table(dec) == [
        (0, "2026-01-01", 2, Decimal("1.0000"), 20_001, Decimal("1.0000")),
        (1, "2026-02-01", 2, Decimal("1.0000"), 20_001, Decimal("1.0000")),
        (2, "2026-03-01", 2, Decimal("1.0000"), 25_001, Decimal("1.2500")),  # 25,001 ÷ 20,001 = 1.24998…
        (3, "2026-04-01", 2, Decimal("1.0000"), 20_000, Decimal("1.0000")),  # 20,000 ÷ 20,001 = 0.999950…
    ]
    # January: Carl and Dorte. Carl churns in February; Dorte churns (+1) and
    # comes back (−1) in March, so she is retained at the end of March.
    assert (jan.customers, jan.starting_mrr) == (2, 20_000)
    assert table(jan) == [
        (0, "2026-02-01", 2, Decimal("1.0000"), 20_000, Decimal("1.0000")),
        (1, "2026-03-01", 1, Decimal("0.5000"), 10_000, Decimal("0.5000")),  # 2 − 1 ÷ 2
        (2, "2026-04-01", 1, Decimal("0.5000"), 10_000, Decimal("0.5000")),  # 2 − (1 + 1 − 1)
    ]
    # February: Emil (trial converted in February). Paused at the end of
    # February: retained (a pause is not churn) but 0 MRR.
    assert (feb.customers, feb.starting_mrr) == (1, 10_000)
    assert table(feb) == [
        (0, "2026-03-01", 1, Decimal("1.0000"), 0, Decimal("0.0000")),
        (1, "2026-04-01", 1, Decimal("1.0000"), 10_000, Decimal("1.0000")),
    ]
    # March: Frida, 15,000 after her forever coupon.
    assert (mar.customers, mar.starting_mrr) == (1, 15_000)
    assert table(mar) == [(0, "2026-04-01", 1, Decimal("1.0000"), 15_000, Decimal("1.0000"))]


def test_empty_cohorts_and_empty_periods_give_null_rates_not_zero(history):
    with history.session_factory() as session:
        result = cohort_retention(
            session, start=datetime(2025, 10, 15, tzinfo=UTC), end=datetime(2025, 11, 15, tzinfo=UTC),
            currency="DKK",
        )  # fmt: skip
    october, november = result.cohorts
    assert october.customers == 0 and october.points[0].customer_retention is None
    assert november.points == [CohortPoint(0, datetime(2025, 11, 15, tzinfo=UTC), 0, None, 0, None)]
    empty = series(history, start=datetime(2025, 10, 1, tzinfo=UTC), end=datetime(2025, 11, 1, tzinfo=UTC))
    bucket = empty.buckets[0]
    assert (bucket.mrr_start, bucket.mrr_end, bucket.arpa, bucket.ltv) == (0, 0, None, None)
    assert bucket.customer_churn_rate is None and bucket.net_revenue_retention is None


def test_to_dict_is_plain_json(history):
    result = series(history).to_dict()
    assert json.loads(json.dumps(result)) == result
    assert result["interval"] == "month" and result["start"] == "2026-01-01T00:00:00+00:00"
    feb = result["buckets"][1]
    assert (
        feb["customer_churn_rate"] == "0.2000" and feb["ltv"] == 58_335 and feb["movements"]["net"] == -5_000
    )
    assert result["buckets"][0]["quick_ratio"] is None
    with history.session_factory() as session:
        cohorts = cohort_retention(session, start=JAN, end=APR, currency="DKK").to_dict()
    assert json.loads(json.dumps(cohorts)) == cohorts
    assert cohorts["cohorts"][0]["month"] == "2026-01-01"
    assert cohorts["cohorts"][0]["points"][1]["customer_retention"] == "0.5000"


@pytest.mark.parametrize(
    ("start", "end", "interval", "currency", "field"),
    [
        (datetime(2026, 1, 1), APR, "month", "DKK", "start"),  # naive
        (APR, JAN, "month", "DKK", "end"),  # empty
        (JAN, APR, "fortnight", "DKK", "interval"),
        (JAN, APR, "month", "XYZ", "currency"),
        (datetime(2000, 1, 1, tzinfo=UTC), APR, "day", "DKK", "interval"),  # too many buckets
    ],
)
def test_bad_requests_are_refused_before_any_query(start, end, interval, currency, field):
    with pytest.raises(InvalidRequest) as raised:
        compute_series(None, start=start, end=end, interval=interval, currency=currency)  # type: ignore[arg-type]
    assert field in raised.value.fields


def test_boundaries_follow_the_calendar():
    start, end = datetime(2024, 1, 31, 12, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC)
    assert boundaries(start, end, Interval.MONTH) == [
        start, datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC), end
    ]  # fmt: skip
    weeks = boundaries(start, end, Interval.WEEK)
    assert all(b.weekday() == 0 and b.hour == 0 for b in weeks[1:-1])  # Mondays, 00:00 UTC
    assert weeks[1] == datetime(2024, 2, 5, tzinfo=UTC)
    days = boundaries(start, end, Interval.DAY)
    assert len(days) - 1 == 34  # Jan 31 from 12:00, Feb 1 … 29 (leap year), Mar 1 … 4: 1 + 29 + 4 buckets
