"""Small builders for test data, all through the service layer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hub.bootstrap import Hub
from hub.services import catalog, customers, subscriptions
from hub.store.models import Customer, Plan, Subscription


def customer(hub: Hub, name: str = "Karen Jensen", **fields: Any) -> Customer:
    fields.setdefault("email", f"{name.lower().replace(' ', '.')}@example.dk")
    return customers.create_customer(customers.CreateCustomer(name=name, **fields), hub.uow())


def plan(
    hub: Hub,
    amount: int = 10_000,
    interval: str = "month",
    *,
    name: str | None = None,
    interval_count: int = 1,
    trial_days: int = 0,
    currency: str = "DKK",
    vat_rate: Decimal = Decimal("25.00"),
) -> Plan:
    product = catalog.create_product(catalog.CreateProduct(name=f"Product for {name or interval}"), hub.uow())
    return catalog.create_plan(
        catalog.CreatePlan(
            product_id=product.id,
            name=name or f"{interval} {amount}",
            amount=amount,
            currency=currency,
            interval=interval,
            interval_count=interval_count,
            trial_days=trial_days,
            vat_rate=vat_rate,
        ),
        hub.uow(),
    )


def subscribe(hub: Hub, customer_id: str, plan_id: str, **options: Any) -> str:
    outcome = subscriptions.create_subscription(
        subscriptions.CreateSubscription(customer_id=customer_id, plan_id=plan_id, **options), hub.uow()
    )
    return outcome.subscription_id


def get_subscription(hub: Hub, subscription_id: str) -> Subscription:
    with hub.session_factory() as session:
        found = session.get(Subscription, subscription_id)
        assert found is not None
        return found
