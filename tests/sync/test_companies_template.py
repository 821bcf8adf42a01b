"""B2B portals keep customers as HubSpot companies: the connector's "customer→companies" mapping template.

The connection starts with the default mapping (customers → contacts); the test puts the template in its
place, then everything goes the way it does in production: the service layer writes the change and its
outbox row, the relay marks the customer dirty, the push job upserts the company on the simulator.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from connectors.hubspot.connector import HubSpotConnector
from hub.services import customers
from hub.services import subscriptions as subs
from hub.services.mappings import SaveMapping, check_mapping
from hub.services.payments import PayInvoice, pay_invoice
from hub.services.sync import push_changes
from hub.store.models import Link
from hub.store.models import Mapping as MappingRow
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from mappings import Mapping
from tests import factories

TEMPLATE = HubSpotConnector.mapping_templates()["customer→companies"]


def use_companies(hub, connection_id: str) -> None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session, session.begin():
        row = session.scalar(
            select(MappingRow).where(
                MappingRow.connection_id == connection_id, MappingRow.object_type == "customer"
            )
        )
        row.definition = TEMPLATE


def sync_customers(hub, connection_id: str):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def test_the_template_is_a_valid_mapping_the_connection_accepts(hub, connection_id):
    mapping = Mapping.load(TEMPLATE)
    assert (mapping.object_type, mapping.remote_object) == ("customer", "companies")
    assert [(key.local, key.remote) for key in mapping.keys] == [
        ("vat_number", "abohub_vat_number"),
        ("id", "abohub_id"),
    ]
    assert "email" not in {name for one in mapping.fields for name in one.local}
    with hub.session_factory() as session:
        checked = check_mapping(session, SaveMapping(connection_id, "customer", TEMPLATE))
    assert "name ↔ name" in checked.summary


def test_customers_appear_as_companies_with_their_status_mrr_and_ltv(hub, sim, connection_id):
    use_companies(hub, connection_id)
    customer = factories.customer(hub, "Nordisk Film A/S", vat_number="DK12345678", country="DK")
    plan = factories.plan(hub, amount=14_900, name="Pro")  # 149.00 a month before VAT
    outcome = subs.create_subscription(subs.CreateSubscription(customer.id, plan.id), hub.uow())
    pay_invoice(PayInvoice(outcome.invoice_ids[0]), hub.uow())

    report = sync_customers(hub, connection_id)

    assert (report.pushed, report.dead_lettered) == (1, 0)
    assert sim.records("contacts") == []
    [company] = sim.records("companies")
    wanted = {
        "name": "Nordisk Film A/S",
        "country": "DK",
        "abohub_id": customer.id,
        "abohub_vat_number": "DK12345678",
        "abohub_status": "Active",
        "abohub_plan": "Pro",
        "abohub_mrr": "149.00",
        "abohub_ltv": "149.00",
        "abohub_currency": "DKK",
    }
    assert {name: company["properties"].get(name) for name in wanted} == wanted
    with hub.session_factory() as session:
        link = session.scalar(select(Link).where(Link.local_id == customer.id))
    assert (link.remote_object, link.remote_id) == ("companies", company["id"])

    customers.update_customer(customers.UpdateCustomer(customer.id, {"name": "Nordisk Film ApS"}), hub.uow())
    assert sync_customers(hub, connection_id).pushed == 1
    [renamed] = sim.records("companies")
    assert (renamed["id"], renamed["properties"]["name"]) == (company["id"], "Nordisk Film ApS")
