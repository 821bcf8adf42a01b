"""Customers: search and filter a paged, sortable list; one customer with everything that touches them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound
from wtforms import SearchField, SelectChoice, SelectField
from wtforms.validators import Length, Optional

from hub.admin.context import hub
from hub.admin.tables import Sorting, paged
from hub.domain.mrr import CustomerState
from hub.store.models import Connection, Customer, Event, Invoice, Link, Payment, Plan, Subscription

SORTING = Sorting(
    {"name": Customer.name, "created": Customer.created_at, "mrr": Customer.mrr}, default="name"
)
AUDIT_LIMIT = 200


class CustomerFilterForm(FlaskForm):
    """The list's search and filter, read from the query string."""

    class Meta:
        csrf = False

    q = SearchField(
        "Search", validators=[Optional(), Length(max=200)], render_kw={"placeholder": "Name, email or VAT"}
    )
    state = SelectField(
        "Revenue",
        choices=[
            SelectChoice("", "Any"),
            *(SelectChoice(s.value, s.value.capitalize()) for s in CustomerState),
        ],
        default="",
    )


def _matching(form: CustomerFilterForm) -> Select[Any]:
    query = select(Customer)
    text = (form.q.data or "").strip()
    if text:
        pattern = f"%{text.lower()}%"
        query = query.where(
            or_(
                Customer.name.ilike(pattern),
                Customer.email.ilike(pattern),
                Customer.vat_number.ilike(pattern),
            )
        )
    if form.state.data:
        query = query.where(Customer.revenue_state == form.state.data)
    return query


def customers() -> ResponseReturnValue:
    form = CustomerFilterForm(formdata=request.args or None)
    valid = not request.args or form.validate()
    if not valid:
        form.q.data, form.state.data = "", ""
    filters = {"q": form.q.data or "", "state": form.state.data or ""}
    with hub().session_factory() as session:
        table = paged(session, _matching(form), SORTING, Customer.id, request.args, filters)
    page = render_template("admin/customers.html", form=form, table=table)
    return page, 200 if valid else 400


@dataclass(frozen=True)
class LinkedRecord:
    """Where one of the customer's records lives in a connected system."""

    connection: Connection
    link: Link


def _audit_trail(session: Session, customer_id: str, record_ids: list[str]) -> list[Event]:
    """Events of the customer and of its subscriptions and invoices, newest first."""
    query = select(Event).where(
        or_(
            Event.customer_id == customer_id,
            Event.aggregate_id.in_(record_ids),
        )
    )
    return list(session.scalars(query.order_by(Event.occurred_at.desc(), Event.id.desc()).limit(AUDIT_LIMIT)))


def _links(session: Session, record_ids: list[str]) -> list[LinkedRecord]:
    rows = session.execute(
        select(Connection, Link)
        .join(Link, Link.connection_id == Connection.id)
        .where(Link.local_id.in_(record_ids))
        .order_by(Connection.name, Link.object_type, Link.remote_id)
    ).all()
    return [LinkedRecord(connection, link) for connection, link in rows]


def customer_detail(customer_id: str) -> ResponseReturnValue:
    with hub().session_factory() as session:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound()
        subscriptions = session.execute(
            select(Subscription, Plan)
            .join(Plan, Plan.id == Subscription.plan_id)
            .where(Subscription.customer_id == customer_id)
            .order_by(Subscription.created_at.desc(), Subscription.id)
        ).all()
        invoices = list(
            session.scalars(
                select(Invoice)
                .where(Invoice.customer_id == customer_id)
                .order_by(Invoice.created_at.desc(), Invoice.id)
            )
        )
        payments = list(
            session.scalars(
                select(Payment)
                .where(Payment.customer_id == customer_id)
                .order_by(Payment.created_at.desc(), Payment.id)
            )
        )
        record_ids = [customer_id, *(sub.id for sub, _ in subscriptions), *(inv.id for inv in invoices)]
        events = _audit_trail(session, customer_id, record_ids)
        links = _links(session, record_ids)
    return render_template(
        "admin/customer.html",
        customer=customer,
        subscriptions=subscriptions,
        invoices=invoices,
        payments=payments,
        events=events,
        links=links,
        audit_limit=AUDIT_LIMIT,
    )


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/customers", "customers", customers)
    blueprint.add_url_rule("/customers/<customer_id>", "customers_detail", customer_detail)
