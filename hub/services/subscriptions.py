"""Subscription handlers: create, change plan, pause, resume, cancel, reactivate, coupons.

Each handler takes a command and a unit of work, changes the subscription
through the state machine in :mod:`hub.domain.lifecycle`, keeps MRR up to date
(:mod:`hub.services.revenue`) and records one event, all in one transaction.
Locks are always taken subscription first, then its customer, so the billing
run and these handlers never wait on each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from hub.domain.calendar import months_per_period, period_end_after
from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.domain.ids import new_id
from hub.domain.invoicing import Line, LineKind
from hub.domain.lifecycle import Action, Status, transition
from hub.domain.proration import prorate_change, prorate_restart
from hub.services import revenue
from hub.services.invoicing import InvoiceDraft, issue, pending_items, with_pending
from hub.services.snapshot import diff, snapshot
from hub.services.uow import UnitOfWork
from hub.store.models import Coupon, Customer, PendingItem, Plan, Subscription

CANCEL_REASONS = (
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "customer_service",
    "too_complex",
    "low_quality",
    "payment_failed",
    "other",
)


# --- commands ---------------------------------------------------------------


@dataclass(frozen=True)
class CreateSubscription:
    customer_id: str
    plan_id: str
    quantity: int = 1
    trial_days: int | None = None  # None: the plan's trial
    start_at: datetime | None = None  # None: now; may be in the past (backdating)
    coupon_code: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangePlan:
    subscription_id: str
    plan_id: str
    quantity: int | None = None
    prorate: bool = True
    invoice_now: bool = False


@dataclass(frozen=True)
class PauseSubscription:
    subscription_id: str
    at_period_end: bool = False
    resume_at: datetime | None = None


@dataclass(frozen=True)
class ResumeSubscription:
    subscription_id: str


@dataclass(frozen=True)
class CancelSubscription:
    subscription_id: str
    reason: str
    feedback: str | None = None
    at_period_end: bool = False


@dataclass(frozen=True)
class ReactivateSubscription:
    subscription_id: str


@dataclass(frozen=True)
class ApplyCoupon:
    subscription_id: str
    coupon_code: str


@dataclass(frozen=True)
class Outcome:
    """What a handler did: the subscription and any invoices it issued."""

    subscription_id: str
    invoice_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChangePreview:
    lines: list[Line]
    invoice_now: bool
    new_period_start: datetime | None
    new_period_end: datetime | None

    @property
    def total(self) -> int:
        return sum(line.total for line in self.lines)


# --- loading and recording ---------------------------------------------------


@dataclass
class Loaded:
    subscription: Subscription
    customer: Customer
    plan: Plan
    coupon: Coupon | None
    before: dict[str, Any]

    def rebase(self) -> None:
        """Take the current state as the new "before" (after one change was recorded)."""
        self.before = snapshot(self.subscription)


def load(uow: UnitOfWork, subscription_id: str) -> Loaded:
    """The subscription and its customer, both locked, with plan and coupon."""
    subscription = uow.session.get(Subscription, subscription_id, with_for_update=True)
    if subscription is None:
        raise NotFound(f"no subscription {subscription_id}")
    customer = revenue.lock_customer(uow, subscription.customer_id)
    assert customer is not None  # a foreign key guarantees it
    plan = uow.session.get(Plan, subscription.plan_id)
    assert plan is not None
    coupon = uow.session.get(Coupon, subscription.coupon_id) if subscription.coupon_id else None
    return Loaded(subscription, customer, plan, coupon, snapshot(subscription))


def record_change(
    uow: UnitOfWork,
    loaded: Loaded,
    event_type: str,
    occurred_at: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    """Refresh MRR and record ``event_type`` with what changed."""
    sub = loaded.subscription
    sub.updated_at = uow.now
    movement = revenue.refresh(uow, loaded.customer, sub, loaded.plan, loaded.coupon, occurred_at)
    before, after = diff(loaded.before, snapshot(sub))
    uow.record(
        event_type,
        "subscription",
        sub.id,
        customer_id=sub.customer_id,
        occurred_at=occurred_at,
        data={"before": before, "after": after, **(extra or {})},
        movement=movement,
    )
    loaded.rebase()


def months_of(plan: Plan) -> int:
    return months_per_period(plan.interval, plan.interval_count)


def coupon_applies(sub: Subscription, coupon: Coupon | None) -> bool:
    if coupon is None:
        return False
    return coupon.duration == "forever" or (sub.coupon_periods_left or 0) > 0


def period_line(sub: Subscription, plan: Plan, coupon: Coupon | None, start: datetime, end: datetime) -> Line:
    """The recurring charge for one period, with the coupon's discount if it still runs."""
    gross = plan.amount * sub.quantity
    discount = 0
    if coupon_applies(sub, coupon):
        discount = revenue.coupon_discount(coupon).on(gross)  # type: ignore[union-attr]
    return Line(
        description=f"{plan.name} ({start.date().isoformat()} – {end.date().isoformat()})",
        quantity=sub.quantity,
        unit_amount=plan.amount,
        vat_rate=plan.vat_rate,
        kind=LineKind.SUBSCRIPTION,
        discount_amount=discount,
        period_start=start,
        period_end=end,
        plan_id=plan.id,
    )


def use_coupon_period(sub: Subscription, coupon: Coupon | None) -> None:
    """Count one billed period against a coupon that runs out."""
    if coupon is not None and coupon.duration != "forever" and (sub.coupon_periods_left or 0) > 0:
        sub.coupon_periods_left = (sub.coupon_periods_left or 0) - 1


def start_period(uow: UnitOfWork, loaded: Loaded, start: datetime, reason: str) -> InvoiceDraft:
    """Begin a fresh period at ``start`` (anchor moves there) and draft its invoice."""
    sub, plan = loaded.subscription, loaded.plan
    end = period_end_after(start, months_of(plan), start, uow.settings.billing_timezone)
    sub.billing_anchor = start
    sub.current_period_start = start
    sub.current_period_end = end
    sub.next_action_at = end
    draft = InvoiceDraft(
        customer_id=sub.customer_id,
        currency=sub.currency,
        billing_reason=reason,
        lines=[period_line(sub, plan, loaded.coupon, start, end)],
        subscription_id=sub.id,
        period_start=start,
        period_end=end,
    )
    use_coupon_period(sub, loaded.coupon)
    return with_pending(draft, pending_items(uow, [sub.id]).get(sub.id, []))


def redeem(uow: UnitOfWork, code: str, currency: str) -> Coupon:
    coupon = uow.session.scalar(select(Coupon).where(Coupon.code == code).with_for_update())
    field_error = {"coupon_code": ["no usable coupon with this code"]}
    if coupon is None or not coupon.active:
        raise InvalidRequest("no usable coupon with this code", fields=field_error)
    if coupon.redeem_by is not None and coupon.redeem_by <= uow.now:
        raise InvalidRequest("the coupon has expired", fields={"coupon_code": ["has expired"]})
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise InvalidRequest(
            "the coupon has been used up", fields={"coupon_code": ["has no redemptions left"]}
        )
    if coupon.amount_off is not None and coupon.currency != currency:
        raise InvalidRequest(
            "the coupon is in another currency",
            fields={"coupon_code": [f"is for {coupon.currency}, the subscription is in {currency}"]},
        )
    coupon.times_redeemed += 1
    coupon.updated_at = uow.now
    return coupon


def coupon_periods(coupon: Coupon) -> int | None:
    if coupon.duration == "forever":
        return None
    if coupon.duration == "once":
        return 1
    return coupon.duration_periods


def usable_plan(uow: UnitOfWork, plan_id: str, currency: str) -> Plan:
    plan = uow.session.get(Plan, plan_id)
    if plan is None:
        raise InvalidRequest("no such plan", fields={"plan_id": ["no plan with this id"]})
    if not plan.active:
        raise InvalidRequest("the plan is archived", fields={"plan_id": ["is archived"]})
    if plan.currency != currency:
        raise InvalidRequest(
            "the plan's currency differs from the customer's",
            fields={"plan_id": [f"is priced in {plan.currency}; the customer pays in {currency}"]},
        )
    return plan


# --- handlers ---------------------------------------------------------------


def create_subscription(cmd: CreateSubscription, uow: UnitOfWork) -> Outcome:
    with uow:
        customer = revenue.lock_customer(uow, cmd.customer_id)
        if customer is None:
            raise InvalidRequest("no such customer", fields={"customer_id": ["no customer with this id"]})
        plan = usable_plan(uow, cmd.plan_id, customer.currency)
        now = uow.now
        start = cmd.start_at or now
        if start > now:
            raise InvalidRequest(
                "a subscription cannot start in the future",
                fields={"start_at": ["must not be in the future; use a trial to delay billing"]},
            )
        if cmd.quantity < 1:
            raise InvalidRequest("quantity must be at least 1", fields={"quantity": ["must be at least 1"]})
        trial_days = plan.trial_days if cmd.trial_days is None else cmd.trial_days
        coupon = redeem(uow, cmd.coupon_code, customer.currency) if cmd.coupon_code else None
        sub = Subscription(
            id=new_id("sub"),
            customer_id=customer.id,
            plan_id=plan.id,
            status=Status.TRIALING.value if trial_days > 0 else Status.ACTIVE.value,
            quantity=cmd.quantity,
            currency=customer.currency,
            started_at=start,
            trial_end=None,
            billing_anchor=start,
            cancel_at_period_end=False,
            pause_at_period_end=False,
            coupon_id=coupon.id if coupon else None,
            coupon_periods_left=coupon_periods(coupon) if coupon else None,
            mrr=0,
            meta=dict(cmd.metadata),
            created_at=now,
            updated_at=now,
        )
        uow.session.add(sub)
        loaded = Loaded(sub, customer, plan, coupon, {})
        drafts = []
        if trial_days > 0:
            trial_end = start + timedelta(days=trial_days)
            sub.trial_end = sub.billing_anchor = sub.next_action_at = trial_end
            sub.current_period_start, sub.current_period_end = start, trial_end
        else:
            drafts.append(start_period(uow, loaded, start, "subscription_create"))
        record_change(uow, loaded, "subscription.created", start)
        invoice_ids = issue(uow, drafts)
        uow.commit()
        return Outcome(sub.id, invoice_ids)


def preview_change(cmd: ChangePlan, uow: UnitOfWork) -> ChangePreview:
    """What :func:`change_plan` would charge and credit, without changing anything."""
    with uow:
        loaded = load(uow, cmd.subscription_id)
        new_plan = usable_plan(uow, cmd.plan_id, loaded.subscription.currency)
        return _proration(uow, loaded, new_plan, cmd)


def _proration(uow: UnitOfWork, loaded: Loaded, new_plan: Plan, cmd: ChangePlan) -> ChangePreview:
    sub, old_plan = loaded.subscription, loaded.plan
    transition(sub.status, Action.CHANGE_PLAN)
    quantity = cmd.quantity or sub.quantity
    if new_plan.id == old_plan.id and quantity == sub.quantity:
        raise InvalidRequest(
            "nothing to change", fields={"plan_id": ["is already the subscription's plan and quantity"]}
        )
    now = uow.now
    if sub.status == Status.TRIALING or (not cmd.prorate and months_of(new_plan) == months_of(old_plan)):
        return ChangePreview([], False, None, None)
    start, end = sub.current_period_start, sub.current_period_end
    assert start is not None and end is not None
    old_amount = old_plan.amount * sub.quantity
    new_amount = new_plan.amount * quantity
    when = now.date().isoformat()
    # Past the period's end (the billing run has not renewed it yet) nothing of it is unused:
    # the new price simply applies from the renewal, or from the restart below.
    ended = now >= end
    if months_of(new_plan) == months_of(old_plan):
        if ended:
            return ChangePreview([], False, None, None)
        p = prorate_change(old_amount, new_amount, start, end, now)
        lines = [
            Line(
                f"Unused time on {old_plan.name} from {when}",
                1,
                p.credit,
                old_plan.vat_rate,
                LineKind.PRORATION,
                period_start=now,
                period_end=end,
                plan_id=old_plan.id,
            ),
            Line(
                f"Remaining time on {new_plan.name} from {when}",
                1,
                p.charge,
                new_plan.vat_rate,
                LineKind.PRORATION,
                period_start=now,
                period_end=end,
                plan_id=new_plan.id,
            ),
        ]
        return ChangePreview(lines, cmd.invoice_now, None, None)
    # A different period length starts a new period now: credit what is unused,
    # charge the new plan's full first period, invoiced at once.
    new_end = period_end_after(now, months_of(new_plan), now, uow.settings.billing_timezone)
    lines = []
    if cmd.prorate and not ended:
        credit = prorate_restart(old_amount, start, end, now)
        lines.append(
            Line(
                f"Unused time on {old_plan.name} from {when}",
                1,
                credit,
                old_plan.vat_rate,
                LineKind.PRORATION,
                period_start=now,
                period_end=end,
                plan_id=old_plan.id,
            )
        )
    lines.append(
        Line(
            f"{new_plan.name} ({when} – {new_end.date().isoformat()})",
            quantity,
            new_plan.amount,
            new_plan.vat_rate,
            LineKind.SUBSCRIPTION,
            period_start=now,
            period_end=new_end,
            plan_id=new_plan.id,
        )
    )
    return ChangePreview(lines, True, now, new_end)


def change_plan(cmd: ChangePlan, uow: UnitOfWork) -> Outcome:
    with uow:
        loaded = load(uow, cmd.subscription_id)
        sub = loaded.subscription
        new_plan = usable_plan(uow, cmd.plan_id, sub.currency)
        preview = _proration(uow, loaded, new_plan, cmd)
        old_plan_id = loaded.plan.id
        items = [_pending(uow, sub, line) for line in preview.lines if line.kind is LineKind.PRORATION]
        uow.session.add_all(items)
        sub.plan_id = new_plan.id
        sub.quantity = cmd.quantity or sub.quantity
        loaded.plan = new_plan
        drafts: list[InvoiceDraft] = []
        if preview.new_period_start is not None:
            uow.session.flush()
            drafts.append(start_period(uow, loaded, preview.new_period_start, "subscription_update"))
        elif preview.invoice_now and items:
            uow.session.flush()
            draft = InvoiceDraft(
                customer_id=sub.customer_id,
                currency=sub.currency,
                billing_reason="subscription_update",
                lines=[],
                subscription_id=sub.id,
                period_start=uow.now,
                period_end=sub.current_period_end,
            )
            drafts.append(with_pending(draft, items))
            if not drafts[-1].lines:
                drafts.pop()
        record_change(
            uow,
            loaded,
            "subscription.plan_changed",
            uow.now,
            extra={
                "from_plan_id": old_plan_id,
                "to_plan_id": new_plan.id,
                "proration": [
                    {"description": line.description, "amount": line.amount} for line in preview.lines
                ],
            },
        )
        invoice_ids = issue(uow, drafts)
        uow.commit()
        return Outcome(sub.id, invoice_ids)


def _pending(uow: UnitOfWork, sub: Subscription, line: Line) -> PendingItem:
    return PendingItem(
        id=new_id("ii"),
        customer_id=sub.customer_id,
        subscription_id=sub.id,
        invoice_id=None,
        description=line.description,
        kind=line.kind.value,
        quantity=line.quantity,
        unit_amount=line.unit_amount,
        currency=sub.currency,
        vat_rate=line.vat_rate,
        plan_id=line.plan_id,
        period_start=line.period_start,
        period_end=line.period_end,
        created_at=uow.now,
    )


def pause_subscription(cmd: PauseSubscription, uow: UnitOfWork) -> Outcome:
    with uow:
        loaded = load(uow, cmd.subscription_id)
        sub = loaded.subscription
        if cmd.resume_at is not None and cmd.resume_at <= uow.now:
            raise InvalidRequest(
                "resume_at must be in the future", fields={"resume_at": ["must be in the future"]}
            )
        if sub.cancel_at_period_end:
            raise StateConflict("the subscription is set to cancel; reactivate it before pausing")
        if cmd.at_period_end:
            transition(sub.status, Action.SCHEDULE_PAUSE)
            end = sub.current_period_end
            if cmd.resume_at is not None and end is not None and cmd.resume_at <= end:
                raise InvalidRequest(
                    "resume_at must be after the current period ends",
                    fields={"resume_at": [f"must be after {end.isoformat()}"]},
                )
            sub.pause_at_period_end = True
            sub.pause_resume_at = cmd.resume_at
            record_change(uow, loaded, "subscription.pause_scheduled", uow.now)
        else:
            apply_pause(uow, loaded, uow.now, cmd.resume_at)
        uow.commit()
        return Outcome(sub.id)


def apply_pause(uow: UnitOfWork, loaded: Loaded, at: datetime, resume_at: datetime | None) -> None:
    sub = loaded.subscription
    sub.status = transition(sub.status, Action.PAUSE).value
    sub.paused_at = at
    sub.resume_at = resume_at
    sub.next_action_at = resume_at
    sub.pause_at_period_end = False
    sub.pause_resume_at = None
    record_change(uow, loaded, "subscription.paused", at)


def resume_subscription(cmd: ResumeSubscription, uow: UnitOfWork) -> Outcome:
    with uow:
        loaded = load(uow, cmd.subscription_id)
        invoice_ids = issue(uow, [apply_resume(uow, loaded, uow.now)])
        uow.commit()
        return Outcome(loaded.subscription.id, invoice_ids)


def apply_resume(uow: UnitOfWork, loaded: Loaded, at: datetime) -> InvoiceDraft:
    """Resume at ``at``: a new period (and anchor) starts then, and is invoiced."""
    sub = loaded.subscription
    sub.status = transition(sub.status, Action.RESUME).value
    sub.paused_at = None
    sub.resume_at = None
    draft = start_period(uow, loaded, at, "subscription_resume")
    record_change(uow, loaded, "subscription.resumed", at)
    return draft


def cancel_subscription(cmd: CancelSubscription, uow: UnitOfWork) -> Outcome:
    if cmd.reason not in CANCEL_REASONS:
        raise InvalidRequest(
            "unknown reason", fields={"reason": [f"must be one of {', '.join(CANCEL_REASONS)}"]}
        )
    with uow:
        loaded = load(uow, cmd.subscription_id)
        sub = loaded.subscription
        sub.cancel_reason = cmd.reason
        sub.cancel_feedback = cmd.feedback
        sub.cancel_requested_at = uow.now
        if cmd.at_period_end:
            transition(sub.status, Action.SCHEDULE_CANCEL)
            if sub.cancel_at_period_end:
                raise StateConflict("the subscription is already set to cancel at period end")
            sub.cancel_at_period_end = True
            sub.pause_at_period_end = False
            sub.pause_resume_at = None
            record_change(
                uow,
                loaded,
                "subscription.cancel_scheduled",
                uow.now,
                extra={"reason": cmd.reason, "feedback": cmd.feedback},
            )
            invoice_ids: list[str] = []
        else:
            final = apply_cancel(uow, loaded, uow.now)
            invoice_ids = issue(uow, [final] if final else [])
        uow.commit()
        return Outcome(sub.id, invoice_ids)


def apply_cancel(uow: UnitOfWork, loaded: Loaded, at: datetime) -> InvoiceDraft | None:
    """Cancel at ``at``; returns the final invoice for anything still waiting to be billed."""
    sub = loaded.subscription
    sub.status = transition(sub.status, Action.CANCEL).value
    sub.canceled_at = at
    sub.next_action_at = None
    sub.cancel_at_period_end = False
    sub.pause_at_period_end = False
    sub.pause_resume_at = None
    sub.resume_at = None
    record_change(
        uow,
        loaded,
        "subscription.canceled",
        at,
        extra={"reason": sub.cancel_reason, "feedback": sub.cancel_feedback},
    )
    return final_invoice(uow, sub, at)


def final_invoice(uow: UnitOfWork, sub: Subscription, at: datetime) -> InvoiceDraft | None:
    """Items that waited for a next invoice (an upgrade's proration) that will now never come."""
    items = pending_items(uow, [sub.id]).get(sub.id, [])
    if not items:
        return None
    draft = InvoiceDraft(
        customer_id=sub.customer_id,
        currency=sub.currency,
        billing_reason="subscription_final",
        lines=[],
        subscription_id=sub.id,
        period_start=at,
        period_end=at,
    )
    draft = with_pending(draft, items)
    return draft if draft.lines else None


def reactivate_subscription(cmd: ReactivateSubscription, uow: UnitOfWork) -> Outcome:
    """Undo a scheduled cancellation or pause before it takes effect."""
    with uow:
        loaded = load(uow, cmd.subscription_id)
        sub = loaded.subscription
        transition(sub.status, Action.REACTIVATE)
        if not (sub.cancel_at_period_end or sub.pause_at_period_end):
            raise StateConflict(
                "nothing is scheduled to undo: the subscription is not set to cancel or pause"
            )
        sub.cancel_at_period_end = False
        sub.pause_at_period_end = False
        sub.pause_resume_at = None
        sub.cancel_reason = None
        sub.cancel_feedback = None
        sub.cancel_requested_at = None
        record_change(uow, loaded, "subscription.reactivated", uow.now)
        uow.commit()
        return Outcome(sub.id)


def apply_coupon(cmd: ApplyCoupon, uow: UnitOfWork) -> Outcome:
    with uow:
        loaded = load(uow, cmd.subscription_id)
        sub = loaded.subscription
        transition(sub.status, Action.APPLY_COUPON)
        coupon = redeem(uow, cmd.coupon_code, sub.currency)
        sub.coupon_id = coupon.id
        sub.coupon_periods_left = coupon_periods(coupon)
        loaded.coupon = coupon
        record_change(uow, loaded, "subscription.coupon_applied", uow.now, extra={"coupon_code": coupon.code})
        uow.commit()
        return Outcome(sub.id)
