"""Two billing runs at the same time on PostgreSQL: gap-free numbers, every subscription billed once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, insert, select, update

from hub.domain.ids import new_id
from hub.services.billing import BillingReport, RunBilling, run_billing
from hub.store.models import Customer, Event, Invoice, Payment, PaymentAttempt, Subscription
from tests import factories
from tests.conftest import START, make_hub, wipe
from tests.integration.support import at

DUE = at("2026-02-15 09:00")  # one month after START
CUSTOMERS = 30
RENEWING, TRIALS, CANCELING = 240, 40, 20


def _subscription(customer_id: str, plan_id: str, **fields) -> dict:
    row = {
        "id": new_id("sub"),
        "customer_id": customer_id,
        "plan_id": plan_id,
        "status": "active",
        "quantity": 1,
        "currency": "DKK",
        "started_at": START,
        "trial_end": None,
        "billing_anchor": START,
        "current_period_start": START,
        "current_period_end": DUE,
        "next_action_at": DUE,
        "cancel_at_period_end": False,
        "pause_at_period_end": False,
        "pause_resume_at": None,
        "paused_at": None,
        "resume_at": None,
        "cancel_requested_at": None,
        "canceled_at": None,
        "cancel_reason": None,
        "cancel_feedback": None,
        "coupon_id": None,
        "coupon_periods_left": None,
        "mrr": 10_000,
        "meta": {},
        "created_at": START,
        "updated_at": START,
    }
    row.update(fields)
    return row


def seed(hub) -> tuple[list[str], list[str], list[str]]:
    """Subscriptions due on ``DUE``, written directly (the billing run is what is under test)."""
    plan = factories.plan(hub, amount=10_000)
    customer_ids = [factories.customer(hub, f"Customer {n}").id for n in range(CUSTOMERS)]
    rows = []
    for n in range(RENEWING):
        rows.append(_subscription(customer_ids[n % CUSTOMERS], plan.id))
    for n in range(TRIALS):
        rows.append(
            _subscription(
                customer_ids[n % CUSTOMERS],
                plan.id,
                status="trialing",
                trial_end=DUE,
                billing_anchor=DUE,
                mrr=0,
            )
        )
    for n in range(CANCELING):
        rows.append(
            _subscription(
                customer_ids[n % CUSTOMERS], plan.id, cancel_at_period_end=True, cancel_reason="unused"
            )
        )
    with hub.engine.begin() as connection:
        connection.execute(insert(Subscription), rows)
        # Each customer's MRR is the sum of their paying subscriptions, as the handlers keep it.
        for customer_id in customer_ids:
            paying = sum(r["mrr"] for r in rows if r["customer_id"] == customer_id)
            connection.execute(
                update(Customer)
                .where(Customer.id == customer_id)
                .values(mrr=paying, revenue_state="active", first_active_at=START)
            )
    renewing = [r["id"] for r in rows[:RENEWING]]
    trials = [r["id"] for r in rows[RENEWING : RENEWING + TRIALS]]
    canceling = [r["id"] for r in rows[RENEWING + TRIALS :]]
    return renewing, trials, canceling


@pytest.mark.postgres_only
def test_two_concurrent_billing_runs_number_invoices_without_gaps_and_bill_each_subscription_once(database):
    setup = make_hub(database)
    wipe(setup)
    renewing, trials, canceling = seed(setup)

    runners = [make_hub(database, billing_batch_size=25) for _ in range(2)]
    start = threading.Barrier(len(runners))
    reports: list[BillingReport] = []
    errors: list[BaseException] = []

    def run(hub) -> None:
        try:
            start.wait()
            reports.append(run_billing(RunBilling(at=DUE), hub.uow()))
        except BaseException as exc:  # report it in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(hub,)) for hub in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for hub in runners:
        hub.close()
    assert errors == [], str(errors[0]) if errors else ""
    assert len(reports) == 2

    expected_invoices = (
        RENEWING + TRIALS
    )  # 240 renewals + 40 first paid periods; 20 cancellations bill nothing
    assert sum(r.renewed for r in reports) == RENEWING
    assert sum(r.trials_ended for r in reports) == TRIALS
    assert sum(r.canceled for r in reports) == CANCELING
    assert sum(r.invoices for r in reports) == expected_invoices

    with setup.session_factory() as session:
        rows = session.execute(select(Invoice.sequence, Invoice.number, Invoice.subscription_id)).all()
        sequences = sorted(sequence for sequence, _, _ in rows)
        assert sequences == list(range(1, expected_invoices + 1))  # exactly 1..N: no gap, no duplicate
        assert len({number for _, number, _ in rows}) == expected_invoices
        per_subscription = Counter(sub_id for _, _, sub_id in rows)
        assert all(per_subscription[sub_id] == 1 for sub_id in renewing + trials)
        assert all(per_subscription[sub_id] == 0 for sub_id in canceling)

        renewed_events = Counter(
            session.scalars(select(Event.aggregate_id).where(Event.type == "subscription.renewed"))
        )
        assert sorted(renewed_events) == sorted(renewing)
        assert set(renewed_events.values()) == {1}

        periods = session.execute(
            select(Subscription.current_period_start, Subscription.current_period_end, func.count())
            .where(Subscription.id.in_(renewing + trials))
            .group_by(Subscription.current_period_start, Subscription.current_period_end)
        ).all()
        assert periods == [(DUE, at("2026-03-15 09:00"), RENEWING + TRIALS)]
        statuses = Counter(session.scalars(select(Subscription.status)))
        assert statuses == {"active": RENEWING + TRIALS, "canceled": CANCELING}

        # Each invoice was charged once, although both runs collected.
        attempts_per_invoice = Counter(session.scalars(select(PaymentAttempt.invoice_id)))
        assert len(attempts_per_invoice) == expected_invoices
        assert set(attempts_per_invoice.values()) == {1}
        assert session.scalar(select(func.count()).select_from(Payment)) == expected_invoices

        # No lost update on the customers both runs changed (trials ending, cancellations).
        for customer in session.scalars(select(Customer)):
            paying = session.scalar(
                select(func.coalesce(func.sum(Subscription.mrr), 0)).where(
                    Subscription.customer_id == customer.id
                )
            )
            assert customer.mrr == paying
    setup.close()
