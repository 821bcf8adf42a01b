"""The billing run: everything due happens once, in batches, dated when it was due."""

from __future__ import annotations

from sqlalchemy import func, select

from hub.services import subscriptions as subs
from hub.services.billing import RunBilling, run_billing
from hub.store.models import Invoice, MrrMovement, Payment, PaymentAttempt
from tests import factories
from tests.conftest import START, make_hub, wipe
from tests.integration.support import at, bill, counts, events, invoices, subscription


def everything(hub) -> dict[str, int]:
    found = counts(hub)
    with hub.session_factory() as session:
        for name, model in [("payments", Payment), ("attempts", PaymentAttempt), ("movements", MrrMovement)]:
            found[name] = session.scalar(select(func.count()).select_from(model)) or 0
    return found


def a_bit_of_everything(hub):
    """Subscriptions that all have something due on 2026-02-15 09:00."""
    customer = factories.customer(hub)
    monthly = factories.plan(hub, amount=10_000, name="Monthly")
    quarterly = factories.plan(hub, amount=27_000, interval="quarter", name="Quarterly")
    trial = factories.plan(hub, amount=10_000, trial_days=31, name="Trial")
    ids = {
        "renews": factories.subscribe(hub, customer.id, monthly.id),
        "trial_ends": factories.subscribe(hub, customer.id, trial.id),
        "cancels": factories.subscribe(hub, customer.id, monthly.id, quantity=2),
        "pauses": factories.subscribe(hub, customer.id, monthly.id, quantity=3),
        "not_due": factories.subscribe(hub, customer.id, quarterly.id),
    }
    subs.cancel_subscription(subs.CancelSubscription(ids["cancels"], "unused", at_period_end=True), hub.uow())
    subs.pause_subscription(subs.PauseSubscription(ids["pauses"], at_period_end=True), hub.uow())
    bill(hub, START)  # pays the first invoices
    return ids


def test_a_run_does_everything_that_is_due_and_a_second_run_nothing(hub):
    ids = a_bit_of_everything(hub)

    first = bill(hub, "2026-02-15 09:00")
    assert (first.renewed, first.trials_ended, first.canceled, first.paused, first.resumed) == (1, 1, 1, 1, 0)
    assert first.invoices == 2  # the renewal and the first paid period after the trial
    assert (first.collection.attempted, first.collection.succeeded) == (2, 2)
    assert {name: subscription(hub, sub_id).status for name, sub_id in ids.items()} == {
        "renews": "active",
        "trial_ends": "active",
        "cancels": "canceled",
        "pauses": "paused",
        "not_due": "active",
    }
    after_first = everything(hub)

    second = bill(hub, "2026-02-15 09:00")
    assert (second.renewed, second.trials_ended, second.canceled, second.paused, second.invoices) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert second.collection.attempted == 0
    assert everything(hub) == after_first

    later = bill(hub, "2026-02-20 00:00")  # later, but nothing new is due
    assert later.invoices == 0
    assert everything(hub) == after_first
    numbers = [i.number for i in invoices(hub)]
    assert numbers == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)]


def test_small_batches_renew_each_subscription_once(database):
    hub = make_hub(database, billing_batch_size=2)
    wipe(hub)
    try:
        customer = factories.customer(hub)
        plan = factories.plan(hub, amount=10_000)
        ids = [factories.subscribe(hub, customer.id, plan.id) for _ in range(7)]
        report = bill(hub, "2026-02-15 09:00")
        assert (report.renewed, report.invoices, report.batches) == (7, 7, 4)  # 2 + 2 + 2 + 1
        assert [len(invoices(hub, sub_id)) for sub_id in ids] == [2] * 7
        assert sorted(i.sequence for i in invoices(hub)) == list(range(1, 15))
    finally:
        hub.close()


def test_a_late_run_catches_up_every_missed_period_dated_when_due(hub):
    customer = factories.customer(hub)
    plan = factories.plan(hub, amount=10_000)
    sub_id = factories.subscribe(hub, customer.id, plan.id)
    report = bill(hub, "2026-05-20 00:00")  # Feb 15, Mar 15, Apr 15 and May 15 were missed
    assert report.renewed == 4
    assert [i.period_start for i in invoices(hub, sub_id)] == [
        START,
        at("2026-02-15 09:00"),
        at("2026-03-15 09:00"),
        at("2026-04-15 09:00"),
        at("2026-05-15 09:00"),
    ]
    assert [e.occurred_at for e in events(hub, sub_id, "subscription.renewed")] == [
        at("2026-02-15 09:00"),
        at("2026-03-15 09:00"),
        at("2026-04-15 09:00"),
        at("2026-05-15 09:00"),
    ]
    assert subscription(hub, sub_id).current_period_end == at("2026-06-15 09:00")


def test_a_run_with_no_time_given_bills_at_the_clock(hub, clock):
    customer = factories.customer(hub)
    sub_id = factories.subscribe(hub, customer.id, factories.plan(hub, amount=10_000).id)
    clock.set(at("2026-02-15 09:00"))
    report = run_billing(RunBilling(), hub.uow())
    assert report.renewed == 1
    assert report.at == at("2026-02-15 09:00")
    assert len(invoices(hub, sub_id)) == 2


def test_month_ends_in_the_copenhagen_billing_time_zone(database):
    hub = make_hub(database, billing_timezone="Europe/Copenhagen")
    wipe(hub)
    try:
        hub.clock.set(at("2026-01-30 23:30"))  # 31 January 00:30 in Copenhagen
        customer = factories.customer(hub)
        sub_id = factories.subscribe(hub, customer.id, factories.plan(hub, amount=10_000).id)
        for day in ["2026-02-27 23:30", "2026-03-30 22:30", "2026-04-29 22:30"]:
            assert bill(hub, day).renewed == 1
        assert [(i.period_start, i.period_end) for i in invoices(hub, sub_id)] == [
            (at("2026-01-30 23:30"), at("2026-02-27 23:30")),  # → 28 Feb 00:30 CET
            (at("2026-02-27 23:30"), at("2026-03-30 22:30")),  # → 31 Mar 00:30 CEST (DST since 29 Mar)
            (at("2026-03-30 22:30"), at("2026-04-29 22:30")),  # → 30 Apr 00:30 CEST
            (at("2026-04-29 22:30"), at("2026-05-30 22:30")),  # → 31 May 00:30 CEST
        ]
    finally:
        hub.close()


def test_no_invoice_is_ever_negative(hub, clock):
    customer = factories.customer(hub)
    big = factories.plan(hub, amount=90_000, name="Big")
    tiny = factories.plan(hub, amount=1_000, name="Tiny")
    sub_id = factories.subscribe(hub, customer.id, big.id)
    clock.set(at("2026-01-16 09:00"))  # one day in: 30 of 31 days unused
    subs.change_plan(subs.ChangePlan(sub_id, tiny.id, invoice_now=True), hub.uow())
    for month in range(2, 8):
        bill(hub, f"2026-{month:02d}-15 09:00")
    with hub.session_factory() as session:
        assert session.scalar(select(func.min(Invoice.total))) >= 0
        assert session.scalar(select(func.count()).where(Invoice.amount_paid > Invoice.total)) == 0
    # 90 000 × 30/31 = 87 096.77 → 87 097 credit against 1 000 a month: still mostly waiting.
    assert [i.total for i in invoices(hub, sub_id)][-3:] == [0, 0, 0]
