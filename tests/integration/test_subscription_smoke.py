"""A first walk through the store: subscribe, renew across month ends, pay."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from hub.services.billing import RunBilling, run_billing
from hub.services.payments import collect_due
from hub.store.models import Invoice
from tests import factories


def test_monthly_subscription_renews_on_month_ends_and_gets_paid(hub, clock):
    clock.set(datetime(2024, 1, 31, 10, tzinfo=UTC))
    customer = factories.customer(hub)
    plan = factories.plan(hub, amount=10_000)
    sub_id = factories.subscribe(hub, customer.id, plan.id)
    collect_due(hub.uow())

    for day in ["2024-02-29", "2024-03-31", "2024-04-30"]:
        run_billing(RunBilling(at=datetime.fromisoformat(f"{day}T10:00:00+00:00")), hub.uow())

    with hub.session_factory() as session:
        invoices = session.scalars(
            select(Invoice).where(Invoice.subscription_id == sub_id).order_by(Invoice.sequence)
        ).all()
    assert [i.number for i in invoices] == ["INV-000001", "INV-000002", "INV-000003", "INV-000004"]
    assert [i.period_start.date().isoformat() for i in invoices] == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
    ]
    assert all(i.status == "paid" and i.total == 12_500 and i.vat == 2_500 for i in invoices)
