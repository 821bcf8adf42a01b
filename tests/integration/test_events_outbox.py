"""Every change writes its event and an outbox row in the same transaction, or nothing at all."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from hub.domain.errors import IllegalTransition
from hub.services import catalog, customers
from hub.services import subscriptions as subs
from hub.services.credit_notes import CreateCreditNote, create_credit_note
from hub.services.payments import PayInvoice, pay_invoice
from hub.services.uow import UnitOfWork
from hub.store.models import Event, OutboxMessage
from tests import factories
from tests.integration.support import at, bill, counts, invoices, subscription


def new_event_types(hub, since: int) -> list[str]:
    with hub.session_factory() as session:
        return list(session.scalars(select(Event.type).where(Event.id > since).order_by(Event.id)))


def last_event_id(hub) -> int:
    with hub.session_factory() as session:
        return session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0


def test_each_handler_writes_its_events_each_with_one_outbox_row(hub, clock):
    steps = []

    def step(expected: list[str], action):
        before, since = counts(hub), last_event_id(hub)
        result = action()
        after = counts(hub)
        assert new_event_types(hub, since) == expected
        assert after["events"] - before["events"] == len(expected)
        assert after["outbox"] - before["outbox"] == len(expected)
        steps.append(expected)
        return result

    customer = step(["customer.created"], lambda: factories.customer(hub))
    product = step(
        ["product.created"], lambda: catalog.create_product(catalog.CreateProduct("Pro"), hub.uow())
    )
    small = step(
        ["plan.created"],
        lambda: catalog.create_plan(
            catalog.CreatePlan(product.id, "Small", 10_000, "DKK", "month"), hub.uow()
        ),
    )
    large = step(
        ["plan.created"],
        lambda: catalog.create_plan(
            catalog.CreatePlan(product.id, "Large", 20_000, "DKK", "month"), hub.uow()
        ),
    )
    step(
        ["coupon.created"],
        lambda: catalog.create_coupon(
            catalog.CreateCoupon("LOYAL", "Loyal", "forever", percent_off=Decimal("10")), hub.uow()
        ),
    )
    sub_id = step(
        ["subscription.created", "invoice.issued"], lambda: factories.subscribe(hub, customer.id, small.id)
    )
    step(["payment.succeeded", "invoice.paid"], lambda: bill(hub, "2026-01-15 09:00"))
    clock.set(at("2026-01-20 00:00"))
    step(
        ["subscription.plan_changed", "invoice.issued"],
        lambda: subs.change_plan(subs.ChangePlan(sub_id, large.id, invoice_now=True), hub.uow()),
    )
    step(["subscription.paused"], lambda: subs.pause_subscription(subs.PauseSubscription(sub_id), hub.uow()))
    clock.set(at("2026-01-25 00:00"))
    step(
        ["subscription.resumed", "invoice.issued"],
        lambda: subs.resume_subscription(subs.ResumeSubscription(sub_id), hub.uow()),
    )
    paid = invoices(hub, sub_id)[-1]
    step(["payment.succeeded", "invoice.paid"], lambda: pay_invoice(PayInvoice(paid.id), hub.uow()))
    step(
        ["credit_note.issued", "payment.refunded"],
        lambda: create_credit_note(CreateCreditNote(paid.id, "order_change"), hub.uow()),
    )
    step(
        ["subscription.coupon_applied"],
        lambda: subs.apply_coupon(subs.ApplyCoupon(sub_id, "LOYAL"), hub.uow()),
    )
    step(
        ["subscription.cancel_scheduled"],
        lambda: subs.cancel_subscription(
            subs.CancelSubscription(sub_id, "other", at_period_end=True), hub.uow()
        ),
    )
    step(
        ["subscription.reactivated"],
        lambda: subs.reactivate_subscription(subs.ReactivateSubscription(sub_id), hub.uow()),
    )
    step(
        ["customer.updated"],
        lambda: customers.update_customer(
            customers.UpdateCustomer(customer.id, {"city": "Aarhus"}), hub.uow()
        ),
    )
    step(
        ["subscription.canceled"],
        lambda: subs.cancel_subscription(subs.CancelSubscription(sub_id, "other"), hub.uow()),
    )

    # Every outbox row points at its event and carries it.
    total = counts(hub)["outbox"]
    with hub.session_factory() as session:
        pairs = session.execute(
            select(OutboxMessage, Event).join(Event, Event.id == OutboxMessage.event_id)
        ).all()
        assert len(pairs) == sum(len(s) for s in steps) == total
        for message, event in pairs:
            assert (message.topic, message.aggregate_type, message.aggregate_id) == (
                event.type,
                event.aggregate_type,
                event.aggregate_id,
            )
            assert message.payload["event_id"] == event.id
            assert message.payload["data"] == event.data
            assert message.relayed_at is None


def test_an_event_says_who_did_what_before_and_after(hub, clock):
    customer = factories.customer(hub)
    sub_id = factories.subscribe(hub, customer.id, factories.plan(hub, amount=10_000).id)
    clock.set(at("2026-01-20 12:00"))
    subs.pause_subscription(subs.PauseSubscription(sub_id), hub.uow(actor="admin:mette@example.dk"))
    with hub.session_factory() as session:
        paused = session.scalar(select(Event).where(Event.type == "subscription.paused"))
    assert paused.actor == "admin:mette@example.dk"
    assert (paused.aggregate_type, paused.aggregate_id, paused.customer_id) == (
        "subscription",
        sub_id,
        customer.id,
    )
    assert paused.occurred_at == at("2026-01-20 12:00")
    before, after = paused.data["before"], paused.data["after"]
    assert (before["status"], before["paused_at"], before["mrr"]) == ("active", None, 10_000)
    assert (after["status"], after["paused_at"], after["mrr"]) == ("paused", "2026-01-20T12:00:00+00:00", 0)
    assert "plan_id" not in after  # only what changed


def test_a_handler_that_fails_after_writing_its_events_leaves_neither_change_nor_event(hub, monkeypatch):
    customer = factories.customer(hub)
    plan = factories.plan(hub, amount=10_000)
    sub_id = factories.subscribe(hub, customer.id, plan.id)
    before = counts(hub)

    original = UnitOfWork.flush_events
    written = []

    def flush_then_crash(self):
        pending = len(self.events)
        original(self)  # the event and outbox rows are INSERTed here, inside the transaction
        written.append(pending)
        raise RuntimeError("crash between writing the events and committing")

    monkeypatch.setattr(UnitOfWork, "flush_events", flush_then_crash)
    with pytest.raises(RuntimeError):
        factories.subscribe(hub, customer.id, plan.id)
    with pytest.raises(RuntimeError):
        subs.cancel_subscription(subs.CancelSubscription(sub_id, "other"), hub.uow())
    with pytest.raises(RuntimeError):
        bill(hub, "2026-02-15 09:00")
    monkeypatch.undo()

    assert written == [2, 1, 2]  # created + issued; canceled; renewed + issued were all written…
    assert counts(hub) == before  # …and all rolled back with the change itself
    assert subscription(hub, sub_id).status == "active"
    assert len(invoices(hub, sub_id)) == 1

    report = bill(hub, "2026-02-15 09:00")  # nothing was half-done: the renewal happens now, once
    assert report.renewed == 1
    assert len(invoices(hub, sub_id)) == 2


def test_a_refused_change_writes_no_event(hub):
    customer = factories.customer(hub)
    sub_id = factories.subscribe(hub, customer.id, factories.plan(hub, amount=10_000).id)
    before = counts(hub)
    with pytest.raises(IllegalTransition):
        subs.resume_subscription(subs.ResumeSubscription(sub_id), hub.uow())
    assert counts(hub) == before
