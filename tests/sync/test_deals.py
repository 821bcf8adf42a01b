"""Subscriptions become HubSpot deals, and a customer's lifetime value reaches their contact.

Everything goes the way it does in production: the service layer writes the change and its outbox
row, the relay marks the touched records dirty, the push job writes only what changed to the
HubSpot simulator. Writes are counted on the simulator, so a record pushed twice would show.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hub.services import customers
from hub.services import subscriptions as subs
from hub.services.credit_notes import CreateCreditNote, CreditLine, create_credit_note
from hub.services.payments import PayInvoice, pay_invoice
from hub.services.sync import push_changes
from hub.store.models import Invoice, InvoiceLine, Link
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests import factories
from tests.conftest import START
from tests.integration.support import bill


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    """Relay the outbox, then push dirty subscriptions and customers; returns both reports."""
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "subscription"), push_changes(hub, connection_id, "customer")


def remote_id_of(hub, object_type: str, local_id: str) -> str:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalar(
            select(Link.remote_id).where(Link.object_type == object_type, Link.local_id == local_id)
        )


def deal_of(hub, sim, subscription_id: str) -> dict:  # type: ignore[no-untyped-def]
    return sim.get("deals", remote_id_of(hub, "subscription", subscription_id))["properties"]


def contact_of(hub, sim, customer_id: str) -> dict:  # type: ignore[no-untyped-def]
    return sim.get("contacts", remote_id_of(hub, "customer", customer_id))["properties"]


def test_a_subscription_made_in_abohub_appears_as_a_won_deal(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    plan = factories.plan(hub, amount=14_900, name="Pro")
    subscription_id = factories.subscribe(hub, customer.id, plan.id, quantity=2)

    deals, _ = sync_out(hub, connection_id)
    assert (deals.pushed, deals.dead_lettered) == (1, 0)
    deal = deal_of(hub, sim, subscription_id)
    assert deal["dealname"] == "Pro — Karen Jensen"
    assert (deal["pipeline"], deal["dealstage"]) == ("default", "closedwon")
    assert (deal["amount"], deal["deal_currency_code"]) == ("298.00", "DKK")
    assert (deal["abohub_status"], deal["abohub_mrr"]) == ("Active", "298.00")
    assert deal["abohub_id"] == subscription_id


def test_a_trial_is_an_open_deal_worth_its_monthly_value_with_no_mrr_yet(hub, sim, connection_id):
    customer = factories.customer(hub)
    yearly = factories.plan(hub, amount=120_000, interval="year", name="Pro yearly", trial_days=14)
    subscription_id = factories.subscribe(hub, customer.id, yearly.id)

    sync_out(hub, connection_id)
    deal = deal_of(hub, sim, subscription_id)
    assert deal["dealstage"] == "decisionmakerboughtin"  # open in the default pipeline
    assert deal["amount"] == "100.00"  # 1,200.00 a year is 100.00 a month
    assert (deal["abohub_status"], deal["abohub_mrr"]) == ("Trialing", "0.00")

    bill(hub, START + timedelta(days=15))  # the trial converts and the first year is paid
    sync_out(hub, connection_id)
    deal = deal_of(hub, sim, subscription_id)
    assert (deal["dealstage"], deal["abohub_status"], deal["abohub_mrr"]) == ("closedwon", "Active", "100.00")
    assert contact_of(hub, sim, customer.id)["abohub_ltv"] == "1200.00"
    assert len(sim.records("deals")) == 1


def test_a_plan_change_and_a_cancellation_move_the_same_deal_once_each(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    basic = factories.plan(hub, amount=9_900, name="Basic")
    pro = factories.plan(hub, amount=14_900, name="Pro")
    subscription_id = factories.subscribe(hub, customer.id, basic.id)
    sync_out(hub, connection_id)
    deal_id = remote_id_of(hub, "subscription", subscription_id)
    writes = sim.writes("deals", deal_id)

    subs.change_plan(subs.ChangePlan(subscription_id, pro.id), hub.uow())
    deals, _ = sync_out(hub, connection_id)
    assert deals.pushed == 1
    assert sim.writes("deals", deal_id) == writes + 1
    deal = deal_of(hub, sim, subscription_id)
    assert (deal["dealname"], deal["amount"], deal["dealstage"]) == (
        "Pro — Karen Jensen",
        "149.00",
        "closedwon",
    )

    subs.cancel_subscription(subs.CancelSubscription(subscription_id, reason="too_expensive"), hub.uow())
    deals, _ = sync_out(hub, connection_id)
    assert deals.pushed == 1
    assert sim.writes("deals", deal_id) == writes + 2
    deal = deal_of(hub, sim, subscription_id)
    assert deal["dealstage"] == "closedlost"
    assert (deal["abohub_status"], deal["abohub_mrr"]) == ("Canceled", "0.00")
    assert deal["amount"] == "149.00"  # the lost deal keeps what it was worth a month

    # Nothing changed since: syncing again writes nothing, and there is still one deal.
    deals, customers = sync_out(hub, connection_id)
    assert (deals.pushed, customers.pushed) == (0, 0)
    assert sim.writes("deals", deal_id) == writes + 2
    assert [d["id"] for d in sim.records("deals")] == [deal_id]


def test_amounts_are_in_the_customers_own_currency(hub, sim, connection_id):
    customer = factories.customer(hub, "Hans Müller", currency="EUR", country="DE", locale="de_DE")
    plan = factories.plan(hub, amount=4_950, currency="EUR", name="Start")
    subscription_id = factories.subscribe(hub, customer.id, plan.id)

    sync_out(hub, connection_id)
    deal = deal_of(hub, sim, subscription_id)
    assert (deal["amount"], deal["deal_currency_code"], deal["abohub_mrr"]) == ("49.50", "EUR", "49.50")
    contact = contact_of(hub, sim, customer.id)
    assert (contact["abohub_mrr"], contact["abohub_currency"]) == ("49.50", "EUR")


def test_a_paid_invoice_raises_the_contacts_lifetime_value_and_a_refund_lowers_it(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    plan = factories.plan(hub, amount=14_900, name="Pro")  # 149.00 + 25 % VAT = 186.25 an invoice
    outcome = subs.create_subscription(subs.CreateSubscription(customer.id, plan.id), hub.uow())
    [invoice_id] = outcome.invoice_ids
    sync_out(hub, connection_id)
    contact_id = remote_id_of(hub, "customer", customer.id)
    assert contact_of(hub, sim, customer.id)["abohub_ltv"] == "0.00"  # issued, not paid: not revenue yet
    writes = sim.writes("contacts", contact_id)

    pay_invoice(PayInvoice(invoice_id), hub.uow())
    _, customers = sync_out(hub, connection_id)
    assert customers.pushed == 1
    assert contact_of(hub, sim, customer.id)["abohub_ltv"] == "149.00"  # net of VAT, like MRR
    assert sim.writes("contacts", contact_id) == writes + 1

    with hub.session_factory() as session:
        line_id = session.scalar(select(InvoiceLine.id).where(InvoiceLine.invoice_id == invoice_id))
    note = create_credit_note(
        CreateCreditNote(invoice_id, "product_unsatisfactory", lines=[CreditLine(line_id, 4_900)]), hub.uow()
    )
    assert note.refunded == 6_125  # 49.00 + VAT went back to the customer
    _, customers = sync_out(hub, connection_id)
    assert customers.pushed == 1
    assert contact_of(hub, sim, customer.id)["abohub_ltv"] == "100.00"
    assert sim.writes("contacts", contact_id) == writes + 2

    _, customers = sync_out(hub, connection_id)
    assert customers.pushed == 0
    assert sim.writes("contacts", contact_id) == writes + 2


def test_lifetime_value_leaves_out_unpaid_invoices_and_counts_credit_settled_ones_as_nothing(
    hub, sim, connection_id
):
    customer = factories.customer(hub)
    plan = factories.plan(hub, amount=10_000)
    first = subs.create_subscription(subs.CreateSubscription(customer.id, plan.id), hub.uow())
    second = subs.create_subscription(subs.CreateSubscription(customer.id, plan.id), hub.uow())
    third = subs.create_subscription(subs.CreateSubscription(customer.id, plan.id), hub.uow())
    pay_invoice(PayInvoice(first.invoice_ids[0]), hub.uow())  # paid: 100.00
    create_credit_note(CreateCreditNote(second.invoice_ids[0], "duplicate"), hub.uow())  # settled by credit
    with hub.session_factory() as session:  # the third invoice stays open
        statuses = {i.id: i.status for i in session.scalars(select(Invoice))}
    assert statuses[second.invoice_ids[0]] == "paid" and statuses[third.invoice_ids[0]] == "open"

    sync_out(hub, connection_id)
    assert contact_of(hub, sim, customer.id)["abohub_ltv"] == "100.00"


def test_renaming_the_customer_renames_their_deal_once(hub, sim, connection_id):
    customer = factories.customer(hub, "Karen Jensen")
    plan = factories.plan(hub, amount=14_900, name="Pro")
    subscription_id = factories.subscribe(hub, customer.id, plan.id)
    sync_out(hub, connection_id)
    deal_id = remote_id_of(hub, "subscription", subscription_id)
    before = sim.writes("deals", deal_id)

    customers.update_customer(customers.UpdateCustomer(customer.id, {"name": "Karen Holm"}), hub.uow())
    deals, _ = sync_out(hub, connection_id)
    assert deals.pushed == 1
    assert deal_of(hub, sim, subscription_id)["dealname"] == "Pro — Karen Holm"
    assert sim.writes("deals", deal_id) == before + 1
