"""The billing run: everything that is due happens, once.

``run_billing`` works in batches of ``ABOHUB_BILLING_BATCH_SIZE`` subscriptions
whose ``next_action_at`` has come: it renews them (a new period and its
invoice), ends trials, applies scheduled cancellations and pauses, and resumes
pauses that have a date. Each batch is one transaction. On PostgreSQL the batch
is taken with ``FOR UPDATE SKIP LOCKED``, so runs started at the same time
split the work instead of doing it twice; on SQLite transactions take turns.
A subscription several periods behind is caught up one period per pass.
Every effect is dated when it was due (the period end), not when the run
happened to see it. Then open invoices whose payment attempt is due are
collected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from hub.domain.calendar import period_end_after
from hub.domain.lifecycle import Action, Status, transition
from hub.services import revenue
from hub.services.clock import FixedClock
from hub.services.invoicing import InvoiceDraft, issue, pending_items, with_pending
from hub.services.payments import CollectionReport, collect_due
from hub.services.snapshot import snapshot
from hub.services.subscriptions import (
    Loaded,
    apply_cancel,
    apply_pause,
    apply_resume,
    months_of,
    period_line,
    record_change,
    start_period,
    use_coupon_period,
)
from hub.services.uow import UnitOfWork
from hub.store.models import Coupon, PendingItem, Plan, Subscription


@dataclass(frozen=True)
class RunBilling:
    at: datetime | None = None
    collect: bool = True


@dataclass
class BillingReport:
    at: datetime
    renewed: int = 0
    trials_ended: int = 0
    canceled: int = 0
    paused: int = 0
    resumed: int = 0
    invoices: int = 0
    batches: int = 0
    collection: CollectionReport = field(default_factory=CollectionReport)


def run_billing(cmd: RunBilling, uow: UnitOfWork) -> BillingReport:
    at = cmd.at or uow.clock.now()
    timed = UnitOfWork(uow.session_factory, FixedClock(at), uow.settings, uow.gateway, uow.actor)
    report = BillingReport(at=at)
    while True:
        with timed:
            handled = _batch(timed, at, report)
            timed.commit()
        if not handled:
            break
        report.batches += 1
    if cmd.collect:
        report.collection = collect_due(timed)
    return report


def _due_action(sub: Subscription, at: datetime) -> str | None:
    if sub.status == Status.TRIALING.value and sub.trial_end and sub.trial_end <= at:
        return "cancel" if sub.cancel_at_period_end else "end_trial"
    if (
        sub.status in (Status.ACTIVE.value, Status.PAST_DUE.value)
        and sub.current_period_end
        and (sub.current_period_end <= at)
    ):
        if sub.cancel_at_period_end:
            return "cancel"
        if sub.pause_at_period_end and sub.status == Status.ACTIVE.value:
            return "pause"  # only an active subscription can pause; a past-due one renews
        return "renew"
    if sub.status == Status.PAUSED.value and sub.resume_at and sub.resume_at <= at:
        return "resume"
    return None


def _batch(uow: UnitOfWork, at: datetime, report: BillingReport) -> int:
    session = uow.session
    query = (
        select(Subscription)
        .where(Subscription.next_action_at <= at)
        .order_by(Subscription.next_action_at, Subscription.id)
        .limit(uow.settings.billing_batch_size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    subs = list(session.scalars(query))
    if not subs:
        return 0
    plans = {p.id: p for p in session.scalars(select(Plan).where(Plan.id.in_({s.plan_id for s in subs})))}
    coupon_ids = {s.coupon_id for s in subs if s.coupon_id}
    coupons = (
        {c.id: c for c in session.scalars(select(Coupon).where(Coupon.id.in_(coupon_ids)))}
        if coupon_ids
        else {}
    )
    items = pending_items(uow, [s.id for s in subs])
    drafts: list[InvoiceDraft] = []
    special: list[tuple[Subscription, str]] = []
    for sub in subs:
        action = _due_action(sub, at)
        if action == "renew":
            drafts.append(
                _renew(uow, sub, plans[sub.plan_id], coupons.get(sub.coupon_id or ""), items.get(sub.id, []))
            )
            report.renewed += 1
        elif action is None:
            sub.next_action_at = None  # nothing is due after all: never pick it up again
        else:
            special.append((sub, action))
    # Lifecycle changes move MRR, which is classified per customer: lock the
    # customers in a fixed order so concurrent runs cannot deadlock.
    for sub, action in sorted(special, key=lambda pair: (pair[0].customer_id, pair[0].id)):
        customer = revenue.lock_customer(uow, sub.customer_id)
        assert customer is not None
        loaded = Loaded(sub, customer, plans[sub.plan_id], coupons.get(sub.coupon_id or ""), snapshot(sub))
        draft = _apply(uow, loaded, action, report)
        if draft is not None:
            drafts.append(draft)
    report.invoices += len(issue(uow, drafts))
    return len(subs)


def _renew(
    uow: UnitOfWork, sub: Subscription, plan: Plan, coupon: Coupon | None, items: list[PendingItem]
) -> InvoiceDraft:
    start = sub.current_period_end
    assert start is not None
    end = period_end_after(sub.billing_anchor, months_of(plan), start, uow.settings.billing_timezone)
    draft = with_pending(
        InvoiceDraft(
            customer_id=sub.customer_id,
            currency=sub.currency,
            billing_reason="subscription_cycle",
            lines=[period_line(sub, plan, coupon, start, end)],
            subscription_id=sub.id,
            period_start=start,
            period_end=end,
        ),
        items,
    )
    use_coupon_period(sub, coupon)
    before = {"current_period_start": sub.current_period_start, "current_period_end": start}
    sub.current_period_start = start
    sub.current_period_end = end
    sub.next_action_at = end
    sub.updated_at = uow.now
    uow.record(
        "subscription.renewed",
        "subscription",
        sub.id,
        customer_id=sub.customer_id,
        occurred_at=start,
        data={"before": before, "after": {"current_period_start": start, "current_period_end": end}},
    )
    return draft


def _apply(uow: UnitOfWork, loaded: Loaded, action: str, report: BillingReport) -> InvoiceDraft | None:
    sub = loaded.subscription
    if action == "end_trial":
        trial_end = sub.trial_end
        assert trial_end is not None
        sub.status = transition(sub.status, Action.ACTIVATE).value
        draft = start_period(uow, loaded, trial_end, "subscription_trial_end")
        record_change(uow, loaded, "subscription.activated", trial_end)
        report.trials_ended += 1
        return draft
    if action == "cancel":
        effective = sub.trial_end if sub.status == Status.TRIALING.value else sub.current_period_end
        assert effective is not None
        final = apply_cancel(uow, loaded, effective)
        report.canceled += 1
        return final
    if action == "pause":
        assert sub.current_period_end is not None
        apply_pause(uow, loaded, sub.current_period_end, sub.pause_resume_at)
        report.paused += 1
        return None
    assert action == "resume" and sub.resume_at is not None
    draft = apply_resume(uow, loaded, sub.resume_at)
    report.resumed += 1
    return draft
