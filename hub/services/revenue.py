"""Keeps each subscription's MRR and its customer's revenue state, and classifies movements.

Called by every handler that can change what a customer pays per month. The
customer row is locked first, so two changes for one customer are classified
one after the other, never from the same stale "before".
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from hub.domain.calendar import months_per_period
from hub.domain.invoicing import Discount
from hub.domain.mrr import CustomerState, classify, customer_state, subscription_mrr
from hub.services.uow import UnitOfWork
from hub.store.models import Coupon, Customer, Plan, Subscription


def forever_discount(coupon: Coupon | None) -> Discount | None:
    if coupon is None or coupon.duration != "forever":
        return None
    return Discount(percent_off=coupon.percent_off, amount_off=coupon.amount_off)


def coupon_discount(coupon: Coupon | None) -> Discount | None:
    if coupon is None:
        return None
    return Discount(percent_off=coupon.percent_off, amount_off=coupon.amount_off)


def mrr_of(subscription: Subscription, plan: Plan, coupon: Coupon | None) -> int:
    return subscription_mrr(
        subscription.status,
        plan.amount,
        subscription.quantity,
        months_per_period(plan.interval, plan.interval_count),
        forever_discount(coupon),
    )


def lock_customer(uow: UnitOfWork, customer_id: str) -> Customer | None:
    # FOR NO KEY UPDATE, not FOR UPDATE: inserting an invoice for a customer takes a KEY SHARE
    # lock on the customer row (the foreign key check), which FOR UPDATE would block, so two
    # billing runs each inserting invoices for a customer the other has locked would deadlock.
    return uow.session.get(Customer, customer_id, with_for_update={"key_share": True})


def refresh(
    uow: UnitOfWork,
    customer: Customer,
    subscription: Subscription,
    plan: Plan,
    coupon: Coupon | None,
    occurred_at: datetime,
) -> dict[str, Any] | None:
    """Recompute MRR after ``subscription`` changed; return the movement to record, if any."""
    subscription.mrr = mrr_of(subscription, plan, coupon)
    uow.session.flush()
    rows = uow.session.execute(
        select(Subscription.status, Subscription.mrr).where(Subscription.customer_id == customer.id)
    ).all()
    before_state = CustomerState(customer.revenue_state)
    before_mrr = customer.mrr
    after_mrr = sum(mrr for _, mrr in rows)
    after_state = customer_state([status for status, _ in rows], before_state, after_mrr)
    moved = classify(before_state, after_state, before_mrr, after_mrr)
    customer.mrr = after_mrr
    customer.revenue_state = after_state.value
    if after_state is CustomerState.ACTIVE and customer.first_active_at is None:
        customer.first_active_at = occurred_at
    if moved is None:
        return None
    cohort_from = customer.first_active_at or occurred_at
    return {
        "occurred_at": occurred_at,
        "customer_id": customer.id,
        "subscription_id": subscription.id,
        "currency": customer.currency,
        "kind": moved.kind.value,
        "amount": after_mrr - before_mrr,
        "customer_mrr_after": after_mrr,
        "active_delta": moved.active_delta,
        "churn_delta": moved.churn_delta,
        "cohort": date(cohort_from.year, cohort_from.month, 1),
    }
