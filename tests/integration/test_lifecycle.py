"""Subscription lifecycle through the handlers: create, trial, backdating, pause, resume, cancel, reactivate.

The clock starts at 2026-01-15 09:00 UTC; a monthly plan costs 100.00 DKK + 25 % VAT = 125.00.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from hub.domain.errors import IllegalTransition, InvalidRequest, NotFound, StateConflict
from hub.services import catalog
from hub.services import subscriptions as subs
from hub.services.payments import collect_due
from hub.store.models import Customer, MrrMovement
from tests import factories
from tests.conftest import START
from tests.integration.support import at, bill, counts, event_types, events, invoices, lines_of, subscription


@pytest.fixture
def monthly(hub):
    return factories.plan(hub, amount=10_000, name="Monthly")


@pytest.fixture
def karen(hub):
    return factories.customer(hub)


def customer_row(hub, customer_id):
    with hub.session_factory() as session:
        return session.get(Customer, customer_id)


# --- create ------------------------------------------------------------------------------


def test_create_without_trial_starts_a_period_and_invoices_it(hub, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)

    sub = subscription(hub, sub_id)
    assert sub.status == "active"
    assert sub.trial_end is None
    assert (sub.current_period_start, sub.current_period_end) == (START, at("2026-02-15 09:00"))
    assert sub.billing_anchor == START
    assert sub.mrr == 10_000
    [invoice] = invoices(hub, sub_id)
    assert invoice.number == "INV-000001"
    assert invoice.billing_reason == "subscription_create"
    assert invoice.status == "open"
    assert (invoice.period_start, invoice.period_end) == (START, at("2026-02-15 09:00"))
    assert lines_of(invoice) == [("subscription", 10_000, 0, 2_500, 12_500)]
    assert invoice.total == 12_500  # 10 000 + 25 % VAT
    assert event_types(hub, sub_id) == ["subscription.created"]
    assert customer_row(hub, karen.id).mrr == 10_000
    assert customer_row(hub, karen.id).revenue_state == "active"


def test_create_with_a_trial_invoices_nothing_until_the_billing_run_ends_the_trial(hub, karen):
    plan = factories.plan(hub, amount=10_000, trial_days=14)
    sub_id = factories.subscribe(hub, karen.id, plan.id)

    sub = subscription(hub, sub_id)
    assert sub.status == "trialing"
    assert sub.trial_end == at("2026-01-29 09:00")  # 15 Jan + 14 days
    assert sub.mrr == 0
    assert invoices(hub, sub_id) == []

    report = bill(hub, "2026-01-29 08:59:59")  # one second early: still a trial
    assert report.trials_ended == 0
    assert subscription(hub, sub_id).status == "trialing"
    assert invoices(hub, sub_id) == []

    report = bill(hub, "2026-01-29 09:00")
    assert report.trials_ended == 1
    sub = subscription(hub, sub_id)
    assert sub.status == "active"
    assert sub.mrr == 10_000
    # The first paid period starts when the trial ends and is anchored there: 29 Jan → 28 Feb → 29 Mar.
    assert (sub.current_period_start, sub.current_period_end) == (
        at("2026-01-29 09:00"),
        at("2026-02-28 09:00"),
    )
    [invoice] = invoices(hub, sub_id)
    assert invoice.billing_reason == "subscription_trial_end"
    assert invoice.total == 12_500
    assert invoice.status == "paid"  # collected by the same run
    activated = events(hub, sub_id, "subscription.activated")[0]
    assert activated.occurred_at == at("2026-01-29 09:00")

    bill(hub, "2026-02-28 09:00")
    bill(hub, "2026-03-29 09:00")
    assert [
        (i.period_start.date().isoformat(), i.period_end.date().isoformat()) for i in invoices(hub, sub_id)
    ] == [
        ("2026-01-29", "2026-02-28"),
        ("2026-02-28", "2026-03-29"),
        ("2026-03-29", "2026-04-29"),
    ]


def test_trial_days_given_on_create_override_the_plan(hub, karen):
    plan = factories.plan(hub, amount=10_000, trial_days=14)
    no_trial = factories.subscribe(hub, karen.id, plan.id, trial_days=0)
    longer = factories.subscribe(hub, karen.id, plan.id, trial_days=30)
    assert subscription(hub, no_trial).status == "active"
    assert len(invoices(hub, no_trial)) == 1
    assert subscription(hub, longer).trial_end == at("2026-02-14 09:00")  # 15 Jan + 30 days


def test_a_backdated_start_is_invoiced_from_the_start_and_caught_up_by_the_billing_run(hub, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id, start_at=at("2025-10-31 12:00"))
    [first] = invoices(hub, sub_id)
    assert (first.period_start, first.period_end) == (at("2025-10-31 12:00"), at("2025-11-30 12:00"))

    report = bill(hub, START)  # 2026-01-15 09:00: two more periods have begun since
    assert report.renewed == 2
    periods = [
        (i.period_start.isoformat()[:10], i.period_end.isoformat()[:10]) for i in invoices(hub, sub_id)
    ]
    assert periods == [
        ("2025-10-31", "2025-11-30"),
        ("2025-11-30", "2025-12-31"),
        ("2025-12-31", "2026-01-31"),
    ]
    # Each renewal is dated when it was due, not when the run saw it.
    assert [e.occurred_at for e in events(hub, sub_id, "subscription.renewed")] == [
        at("2025-11-30 12:00"),
        at("2025-12-31 12:00"),
    ]
    assert events(hub, sub_id, "subscription.created")[0].occurred_at == at("2025-10-31 12:00")


def test_a_start_in_the_future_is_refused(hub, karen, monthly):
    with pytest.raises(InvalidRequest):
        factories.subscribe(hub, karen.id, monthly.id, start_at=at("2026-01-16 00:00"))
    assert counts(hub)["subscriptions"] == 0


def test_a_plan_in_another_currency_is_refused(hub, karen):
    euro = factories.plan(hub, amount=1_000, currency="EUR")
    with pytest.raises(InvalidRequest) as caught:
        factories.subscribe(hub, karen.id, euro.id)
    assert "plan_id" in caught.value.fields


# --- pause and resume -----------------------------------------------------------------------


def pause(hub, sub_id, **kw):
    return subs.pause_subscription(subs.PauseSubscription(sub_id, **kw), hub.uow())


def resume(hub, sub_id):
    return subs.resume_subscription(subs.ResumeSubscription(sub_id), hub.uow())


def cancel(hub, sub_id, reason="too_expensive", **kw):
    return subs.cancel_subscription(subs.CancelSubscription(sub_id, reason, **kw), hub.uow())


def reactivate(hub, sub_id):
    return subs.reactivate_subscription(subs.ReactivateSubscription(sub_id), hub.uow())


def test_pause_now_open_ended_stops_billing_until_resumed(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    clock.set(at("2026-01-20 12:00"))
    pause(hub, sub_id)

    sub = subscription(hub, sub_id)
    assert (sub.status, sub.paused_at, sub.resume_at, sub.mrr) == ("paused", at("2026-01-20 12:00"), None, 0)
    assert customer_row(hub, karen.id).revenue_state == "paused"

    for day in ["2026-02-15 09:00", "2026-03-15 09:00", "2026-04-15 09:00"]:
        bill(hub, day)
    assert len(invoices(hub, sub_id)) == 1  # only the first period's invoice
    assert subscription(hub, sub_id).status == "paused"

    clock.set(at("2026-04-20 10:00"))
    outcome = resume(hub, sub_id)

    sub = subscription(hub, sub_id)
    assert sub.status == "active"
    assert sub.mrr == 10_000
    # Resuming starts a new period, anchored at the resume.
    assert (sub.current_period_start, sub.current_period_end) == (
        at("2026-04-20 10:00"),
        at("2026-05-20 10:00"),
    )
    assert sub.billing_anchor == at("2026-04-20 10:00")
    latest = invoices(hub, sub_id)[-1]
    assert outcome.invoice_ids == [latest.id]
    assert latest.billing_reason == "subscription_resume"
    assert (latest.period_start, latest.total) == (at("2026-04-20 10:00"), 12_500)

    bill(hub, "2026-05-20 10:00")
    assert invoices(hub, sub_id)[-1].period_start == at("2026-05-20 10:00")
    assert event_types(hub, sub_id) == [
        "subscription.created",
        "subscription.paused",
        "subscription.resumed",
        "subscription.renewed",
    ]


def test_pause_now_with_a_resume_date_is_resumed_by_the_billing_run_on_that_date(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    clock.set(at("2026-01-20 12:00"))
    pause(hub, sub_id, resume_at=at("2026-03-01 06:00"))
    assert subscription(hub, sub_id).resume_at == at("2026-03-01 06:00")

    bill(hub, "2026-02-15 09:00")
    assert bill(hub, "2026-03-01 05:59:59").resumed == 0
    assert len(invoices(hub, sub_id)) == 1

    report = bill(hub, "2026-03-01 06:00")
    assert report.resumed == 1
    sub = subscription(hub, sub_id)
    assert sub.status == "active"
    assert (sub.current_period_start, sub.current_period_end) == (
        at("2026-03-01 06:00"),
        at("2026-04-01 06:00"),
    )
    latest = invoices(hub, sub_id)[-1]
    assert (latest.billing_reason, latest.status, latest.total) == ("subscription_resume", "paid", 12_500)


def test_a_late_billing_run_resumes_on_the_date_that_was_due(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    clock.set(at("2026-01-20 12:00"))
    pause(hub, sub_id, resume_at=at("2026-03-01 06:00"))

    bill(hub, "2026-03-03 00:00")  # two days late
    sub = subscription(hub, sub_id)
    assert (sub.current_period_start, sub.current_period_end) == (
        at("2026-03-01 06:00"),
        at("2026-04-01 06:00"),
    )
    assert events(hub, sub_id, "subscription.resumed")[0].occurred_at == at("2026-03-01 06:00")


def test_pause_at_period_end_keeps_the_paid_period_and_pauses_when_it_ends(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    clock.set(at("2026-01-20 12:00"))
    pause(hub, sub_id, at_period_end=True, resume_at=at("2026-04-01 00:00"))

    sub = subscription(hub, sub_id)
    assert (sub.status, sub.pause_at_period_end, sub.mrr) == ("active", True, 10_000)

    report = bill(hub, "2026-02-15 09:00")
    assert (report.paused, report.renewed, report.invoices) == (1, 0, 0)
    sub = subscription(hub, sub_id)
    assert (sub.status, sub.paused_at, sub.resume_at) == (
        "paused",
        at("2026-02-15 09:00"),
        at("2026-04-01 00:00"),
    )
    assert sub.pause_at_period_end is False
    bill(hub, "2026-03-15 09:00")
    assert len(invoices(hub, sub_id)) == 1

    bill(hub, "2026-04-01 00:00")
    sub = subscription(hub, sub_id)
    assert (sub.status, sub.current_period_end) == ("active", at("2026-05-01 00:00"))
    assert [i.billing_reason for i in invoices(hub, sub_id)] == ["subscription_create", "subscription_resume"]


def test_pause_at_period_end_open_ended(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    pause(hub, sub_id, at_period_end=True)
    bill(hub, "2026-02-15 09:00")
    bill(hub, "2026-06-15 09:00")
    sub = subscription(hub, sub_id)
    assert (sub.status, sub.resume_at, sub.next_action_at) == ("paused", None, None)
    assert len(invoices(hub, sub_id)) == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"resume_at": START}, "resume_at"),  # not in the future
        ({"at_period_end": True, "resume_at": at("2026-02-10 00:00")}, "resume_at"),  # before the period ends
    ],
)
def test_a_resume_date_that_cannot_work_is_refused(hub, karen, monthly, options, field):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    with pytest.raises(InvalidRequest) as caught:
        pause(hub, sub_id, **options)
    assert field in caught.value.fields
    assert subscription(hub, sub_id).status == "active"


def test_a_subscription_set_to_cancel_cannot_be_paused(hub, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    cancel(hub, sub_id, at_period_end=True)
    with pytest.raises(StateConflict):
        pause(hub, sub_id)


# --- cancel and reactivate ---------------------------------------------------------------


def test_cancel_now_with_reason_and_feedback(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    clock.set(at("2026-01-25 16:30"))
    cancel(hub, sub_id, "switched_service", feedback="Found a cheaper one")

    sub = subscription(hub, sub_id)
    assert (sub.status, sub.canceled_at, sub.mrr) == ("canceled", at("2026-01-25 16:30"), 0)
    assert (sub.cancel_reason, sub.cancel_feedback) == ("switched_service", "Found a cheaper one")
    assert sub.next_action_at is None
    [canceled] = events(hub, sub_id, "subscription.canceled")
    assert canceled.data["reason"] == "switched_service"
    assert canceled.data["feedback"] == "Found a cheaper one"
    assert canceled.data["after"]["status"] == "canceled"
    assert canceled.data["before"]["status"] == "active"
    assert customer_row(hub, karen.id).revenue_state == "churned"

    bill(hub, "2026-02-15 09:00")
    bill(hub, "2026-03-15 09:00")
    assert len(invoices(hub, sub_id)) == 1


def test_cancel_at_period_end_takes_effect_when_the_period_ends(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    clock.set(at("2026-01-25 16:30"))
    cancel(hub, sub_id, "too_expensive", feedback="Maybe next year", at_period_end=True)

    sub = subscription(hub, sub_id)
    assert (sub.status, sub.cancel_at_period_end, sub.mrr) == ("active", True, 10_000)
    assert sub.cancel_requested_at == at("2026-01-25 16:30")
    assert event_types(hub, sub_id)[-1] == "subscription.cancel_scheduled"

    assert bill(hub, "2026-02-15 08:59:59").canceled == 0
    report = bill(hub, "2026-02-15 09:00")
    assert (report.canceled, report.renewed, report.invoices) == (1, 0, 0)
    sub = subscription(hub, sub_id)
    assert (sub.status, sub.canceled_at, sub.mrr) == ("canceled", at("2026-02-15 09:00"), 0)
    assert (sub.cancel_reason, sub.cancel_feedback) == ("too_expensive", "Maybe next year")
    [canceled] = events(hub, sub_id, "subscription.canceled")
    assert canceled.occurred_at == at("2026-02-15 09:00")
    assert (canceled.data["reason"], canceled.data["feedback"]) == ("too_expensive", "Maybe next year")
    assert len(invoices(hub, sub_id)) == 1  # no invoice for the next period


def test_cancel_at_period_end_during_a_trial_cancels_when_the_trial_ends_unbilled(hub, karen):
    plan = factories.plan(hub, amount=10_000, trial_days=7)
    sub_id = factories.subscribe(hub, karen.id, plan.id)
    cancel(hub, sub_id, "unused", at_period_end=True)
    report = bill(hub, "2026-01-22 09:00")
    assert (report.canceled, report.trials_ended) == (1, 0)
    sub = subscription(hub, sub_id)
    assert (sub.status, sub.canceled_at) == ("canceled", at("2026-01-22 09:00"))
    assert invoices(hub, sub_id) == []
    assert customer_row(hub, karen.id).revenue_state == "none"  # never paid, so never churned


def test_an_unknown_cancel_reason_is_refused(hub, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    with pytest.raises(InvalidRequest) as caught:
        cancel(hub, sub_id, "bored")
    assert "reason" in caught.value.fields
    assert subscription(hub, sub_id).status == "active"


def test_cancel_at_period_end_twice_is_a_conflict(hub, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    cancel(hub, sub_id, at_period_end=True)
    with pytest.raises(StateConflict):
        cancel(hub, sub_id, at_period_end=True)


def test_reactivate_undoes_a_scheduled_cancel(hub, clock, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    cancel(hub, sub_id, "too_expensive", feedback="meh", at_period_end=True)
    clock.set(at("2026-02-01 00:00"))
    reactivate(hub, sub_id)

    sub = subscription(hub, sub_id)
    assert (sub.status, sub.cancel_at_period_end, sub.cancel_reason, sub.cancel_feedback) == (
        "active",
        False,
        None,
        None,
    )
    report = bill(hub, "2026-02-15 09:00")
    assert (report.renewed, report.canceled) == (1, 0)
    assert subscription(hub, sub_id).status == "active"
    assert len(invoices(hub, sub_id)) == 2
    assert event_types(hub, sub_id) == [
        "subscription.created",
        "subscription.cancel_scheduled",
        "subscription.reactivated",
        "subscription.renewed",
    ]


def test_reactivate_undoes_a_scheduled_pause(hub, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    pause(hub, sub_id, at_period_end=True, resume_at=at("2026-05-01 00:00"))
    reactivate(hub, sub_id)
    sub = subscription(hub, sub_id)
    assert (sub.pause_at_period_end, sub.pause_resume_at) == (False, None)
    assert bill(hub, "2026-02-15 09:00").renewed == 1


def test_reactivate_with_nothing_scheduled_is_a_conflict(hub, karen, monthly):
    sub_id = factories.subscribe(hub, karen.id, monthly.id)
    with pytest.raises(StateConflict):
        reactivate(hub, sub_id)


def test_an_unknown_subscription_is_not_found(hub):
    with pytest.raises(NotFound):
        cancel(hub, "sub_missing")


# --- every illegal transition, through the handlers -------------------------------------------


def make_in_status(hub, status: str, plan_id: str, customer_id: str) -> str:
    """A fresh subscription in ``status``, reached through the handlers."""
    sub_id = factories.subscribe(hub, customer_id, plan_id, trial_days=14 if status == "trialing" else 0)
    if status == "past_due":
        collect_due(hub.uow())  # the customer's card is declined
    elif status == "paused":
        pause(hub, sub_id)
    elif status == "canceled":
        cancel(hub, sub_id)
    assert subscription(hub, sub_id).status == status
    return sub_id


def handlers(hub):
    """Each handler as a call taking a subscription id (the plan and coupon they need exist)."""
    other = factories.plan(hub, amount=20_000, name="Other")
    catalog.create_coupon(
        catalog.CreateCoupon(code="TENOFF", name="10 %", duration="forever", percent_off=Decimal("10")),
        hub.uow(),
    )
    return {
        "pause_now": lambda sub_id: pause(hub, sub_id),
        "pause_at_period_end": lambda sub_id: pause(hub, sub_id, at_period_end=True),
        "resume": lambda sub_id: resume(hub, sub_id),
        "cancel_now": lambda sub_id: cancel(hub, sub_id),
        "cancel_at_period_end": lambda sub_id: cancel(hub, sub_id, at_period_end=True),
        "reactivate": lambda sub_id: reactivate(hub, sub_id),
        "change_plan": lambda sub_id: subs.change_plan(subs.ChangePlan(sub_id, other.id), hub.uow()),
        "apply_coupon": lambda sub_id: subs.apply_coupon(subs.ApplyCoupon(sub_id, "TENOFF"), hub.uow()),
    }


# What each handler does to a subscription in each status, written out by hand.
# ok: it succeeds · illegal: IllegalTransition (409) · conflict: StateConflict (nothing scheduled to undo)
OUTCOMES = """
handler               trialing  active    past_due  paused    canceled
pause_now             illegal   ok        illegal   illegal   illegal
pause_at_period_end   illegal   ok        illegal   illegal   illegal
resume                illegal   illegal   illegal   ok        illegal
cancel_now            ok        ok        ok        ok        illegal
cancel_at_period_end  ok        ok        ok        illegal   illegal
reactivate            conflict  conflict  conflict  illegal   illegal
change_plan           ok        ok        illegal   illegal   illegal
apply_coupon          ok        ok        ok        ok        illegal
"""


def _outcomes() -> dict[str, dict[str, str]]:
    header, *rows = [r.split() for r in OUTCOMES.strip().splitlines()]
    table: dict[str, dict[str, str]] = {status: {} for status in header[1:]}
    for handler, *cells in rows:
        for status, cell in zip(header[1:], cells, strict=True):
            table[status][handler] = cell
    return table


EXPECTED_OUTCOMES = _outcomes()


@pytest.mark.parametrize("status", list(EXPECTED_OUTCOMES))
def test_every_handler_in_every_status(hub, clock, status):
    expected = EXPECTED_OUTCOMES[status]
    calls = handlers(hub)
    assert set(calls) == set(expected)
    plan = factories.plan(hub, amount=10_000)
    meta = {"payment_method": "declined"} if status == "past_due" else {}
    customer = factories.customer(hub, f"Customer {status}", meta=meta)
    clock.set(START)
    refused = make_in_status(hub, status, plan.id, customer.id)
    clock.set(at("2026-01-20 00:00"))
    for handler, outcome in expected.items():
        if outcome == "ok":
            continue
        before = counts(hub)
        error = IllegalTransition if outcome == "illegal" else StateConflict
        with pytest.raises(error) as caught:
            calls[handler](refused)
        if outcome == "illegal":
            assert (caught.value.status, handler) == (status, handler)
        # Nothing was written: the status, the events, the outbox and the invoices are as before.
        assert subscription(hub, refused).status == status, handler
        assert counts(hub) == before, handler
    for handler, outcome in expected.items():
        if outcome != "ok":
            continue
        clock.set(START)
        fresh = make_in_status(hub, status, plan.id, customer.id)
        clock.set(at("2026-01-20 00:00"))
        before = counts(hub)
        calls[handler](fresh)
        after = counts(hub)
        assert after["events"] > before["events"], handler
        assert after["outbox"] - before["outbox"] == after["events"] - before["events"], handler


# --- what each change does to MRR -----------------------------------------------------------------


def test_a_customer_story_moves_mrr_step_by_step(hub, clock, karen, monthly):
    big = factories.plan(hub, amount=20_000, name="Big")
    trial = factories.plan(hub, amount=10_000, trial_days=14, name="Trial")
    first = factories.subscribe(hub, karen.id, monthly.id)  # 15 Jan: new
    clock.set(at("2026-01-20 00:00"))
    pause(hub, first)
    clock.set(at("2026-02-01 00:00"))
    resume(hub, first)
    clock.set(at("2026-02-05 00:00"))
    cancel(hub, first, "too_expensive")
    clock.set(at("2026-03-01 00:00"))
    factories.subscribe(hub, karen.id, big.id)  # back again: reactivation
    clock.set(at("2026-03-02 00:00"))
    factories.subscribe(hub, karen.id, trial.id)  # a trial moves nothing…
    bill(hub, "2026-03-16 00:00")  # …until it ends: expansion

    with hub.session_factory() as session:
        rows = session.execute(
            select(
                MrrMovement.occurred_at,
                MrrMovement.kind,
                MrrMovement.amount,
                MrrMovement.customer_mrr_after,
                MrrMovement.active_delta,
                MrrMovement.churn_delta,
                MrrMovement.cohort,
            )
            .where(MrrMovement.customer_id == karen.id)
            .order_by(MrrMovement.id)
        ).all()
    assert [tuple(row[:6]) for row in rows] == [
        (START, "new", 10_000, 10_000, 1, 0),
        (at("2026-01-20 00:00"), "paused", -10_000, 0, -1, 0),
        (at("2026-02-01 00:00"), "resumed", 10_000, 10_000, 1, 0),
        (at("2026-02-05 00:00"), "churned", -10_000, 0, -1, 1),
        (at("2026-03-01 00:00"), "reactivation", 20_000, 20_000, 1, -1),
        (at("2026-03-16 00:00"), "expansion", 10_000, 30_000, 0, 0),
    ]
    assert {row.cohort.isoformat() for row in rows} == {"2026-01-01"}  # the month the customer first paid
    assert customer_row(hub, karen.id).mrr == 30_000
