"""Customers, products, plans: what can change, what cannot, and the audit trail of each change."""

from __future__ import annotations

import pytest

from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.services import catalog, customers
from tests import factories
from tests.integration.support import counts, events


def update(hub, customer_id, **changes):
    return customers.update_customer(customers.UpdateCustomer(customer_id, changes), hub.uow())


def test_a_customer_change_records_only_what_changed(hub):
    karen = factories.customer(hub, vat_number=None)
    update(hub, karen.id, vat_number="DK12345678", city="Odense", name=karen.name)
    [changed] = events(hub, karen.id, "customer.updated")
    assert changed.data["before"] == {"vat_number": None, "city": None}
    assert changed.data["after"] == {"vat_number": "DK12345678", "city": "Odense"}
    before = counts(hub)
    update(hub, karen.id, city="Odense")  # no change, no event
    assert counts(hub) == before


def test_a_customer_cannot_change_currency_once_subscribed(hub):
    karen = factories.customer(hub)
    assert update(hub, karen.id, currency="EUR").currency == "EUR"  # no subscriptions yet
    update(hub, karen.id, currency="DKK")
    factories.subscribe(hub, karen.id, factories.plan(hub, amount=10_000).id)
    with pytest.raises(StateConflict):
        update(hub, karen.id, currency="EUR")


@pytest.mark.parametrize(("changes", "field"), [({"mrr": 0}, "mrr"), ({"currency": "XXQ"}, "currency")])
def test_bad_customer_changes_are_refused(hub, changes, field):
    karen = factories.customer(hub)
    with pytest.raises(InvalidRequest) as caught:
        update(hub, karen.id, **changes)
    assert field in caught.value.fields


def test_an_unknown_customer_is_not_found(hub):
    with pytest.raises(NotFound):
        update(hub, "cus_missing", city="Aarhus")
    with pytest.raises(InvalidRequest):
        factories.subscribe(hub, "cus_missing", factories.plan(hub).id)


def test_a_plan_price_never_changes_but_its_name_can(hub):
    plan = factories.plan(hub, amount=10_000)
    with pytest.raises(InvalidRequest) as caught:
        catalog.update_plan(catalog.Update(plan.id, {"amount": 5_000, "interval": "year"}), hub.uow())
    assert set(caught.value.fields) == {"amount", "interval"}
    renamed = catalog.update_plan(catalog.Update(plan.id, {"name": "Basis"}), hub.uow())
    assert (renamed.name, renamed.amount) == ("Basis", 10_000)
    assert events(hub, plan.id, "plan.updated")[0].data == {
        "before": {"name": "month 10000"},
        "after": {"name": "Basis"},
    }


def test_a_plan_needs_a_known_currency_and_product(hub):
    product = catalog.create_product(catalog.CreateProduct("Pro"), hub.uow())
    with pytest.raises(InvalidRequest):
        catalog.create_plan(catalog.CreatePlan(product.id, "Bad", 100, "XXQ", "month"), hub.uow())
    with pytest.raises(InvalidRequest):
        catalog.create_plan(catalog.CreatePlan("prod_missing", "Bad", 100, "DKK", "month"), hub.uow())


def test_an_archived_plan_takes_no_new_subscriptions(hub):
    karen = factories.customer(hub)
    plan = factories.plan(hub, amount=10_000)
    sub_id = factories.subscribe(hub, karen.id, plan.id)
    catalog.update_plan(catalog.Update(plan.id, {"active": False}), hub.uow())
    with pytest.raises(InvalidRequest) as caught:
        factories.subscribe(hub, karen.id, plan.id)
    assert caught.value.fields == {"plan_id": ["is archived"]}
    assert sub_id  # the existing subscription is untouched
