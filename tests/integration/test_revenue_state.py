"""Who counts as a paying customer: free plans and free-forever coupons do not."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from hub.services import catalog, subscriptions
from hub.store.models import Customer, MrrMovement
from tests import factories


def movements(hub, customer_id):  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return [
            (m.kind, m.amount)
            for m in session.scalars(
                select(MrrMovement).where(MrrMovement.customer_id == customer_id).order_by(MrrMovement.id)
            )
        ]


def state(hub, customer_id):  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        customer = session.get(Customer, customer_id)
        return customer.revenue_state, customer.mrr


def test_a_free_plan_is_not_a_paying_customer(hub):
    free = factories.plan(hub, amount=0, name="Gratis")
    customer = factories.customer(hub)
    factories.subscribe(hub, customer.id, free.id)
    assert state(hub, customer.id) == ("none", 0)
    assert movements(hub, customer.id) == []


def test_a_hundred_percent_forever_coupon_is_churn_and_removing_it_is_reactivation(hub, clock):
    plan = factories.plan(hub, amount=10_000)
    customer = factories.customer(hub)
    sub_id = factories.subscribe(hub, customer.id, plan.id)
    catalog.create_coupon(
        catalog.CreateCoupon(code="FREE", name="Free forever", duration="forever", percent_off=Decimal(100)),
        hub.uow(),
    )
    subscriptions.apply_coupon(subscriptions.ApplyCoupon(sub_id, "FREE"), hub.uow())
    assert state(hub, customer.id) == ("churned", 0)
    assert movements(hub, customer.id) == [("new", 10_000), ("churned", -10_000)]
