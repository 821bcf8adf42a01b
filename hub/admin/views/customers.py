"""Customers: search and filter a paged, sortable list; one customer with everything that touches them, and
the form an admin corrects their details with.

The edit form checks what the API checks (the same marshmallow rules) and sends only the fields that
changed to ``hub.services.customers.update_customer``, acting as the staff user: the change is audited and,
through the outbox, pushed to every connected system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from marshmallow import validate
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound
from wtforms import EmailField, SearchField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from hub.admin.auth import requires
from hub.admin.context import hub, uow
from hub.admin.forms import Same, place_field_errors
from hub.admin.tables import Sorting, paged
from hub.domain.errors import AbohubError, StateConflict
from hub.domain.mrr import CustomerState
from hub.services.customers import EDITABLE, UpdateCustomer, update_customer
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


def _stripped(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def _upper(value: str | None) -> str | None:
    return value.strip().upper() if isinstance(value, str) else value


class CustomerForm(FlaskForm):
    """A customer's details, with the API's rules and messages (``hub.api.schemas.CustomerSchema``)."""

    name = StringField("Name", filters=[_stripped], validators=[DataRequired(), Length(max=200)])
    email = EmailField(
        "Email",
        filters=[_stripped],
        validators=[
            DataRequired(),
            Length(max=320),
            Same(validate.Email(error="Not a valid email address.")),
        ],
    )
    vat_number = StringField("VAT number", filters=[_stripped], validators=[Optional(), Length(max=32)])
    country = StringField(
        "Country",
        filters=[_upper],
        validators=[DataRequired(), Regexp(r"^[A-Z]{2}$", message="must be an ISO 3166 code like DK")],
    )
    currency = StringField(
        "Currency",
        filters=[_upper],
        validators=[DataRequired(), Regexp(r"^[A-Z]{3}$", message="must be an ISO 4217 code like DKK")],
    )
    locale = StringField(
        "Locale",
        filters=[_stripped],
        validators=[
            DataRequired(),
            Regexp(r"^[a-z]{2,3}([_-][A-Z]{2})?$", message="must be a locale like da_DK"),
        ],
    )
    address_line1 = StringField("Address", filters=[_stripped], validators=[Optional(), Length(max=200)])
    address_line2 = StringField(
        "Address, line 2", filters=[_stripped], validators=[Optional(), Length(max=200)]
    )
    postal_code = StringField("Postal code", filters=[_stripped], validators=[Optional(), Length(max=20)])
    city = StringField("City", filters=[_stripped], validators=[Optional(), Length(max=100)])

    def changes(self, customer: Customer) -> dict[str, Any]:
        """The fields whose value differs from the customer's; an emptied optional field becomes None."""
        changed = {}
        for name in EDITED:
            value = self[name].data or None
            if value != getattr(customer, name):
                changed[name] = value
        return changed


EDITED = tuple(name for name in EDITABLE if name != "meta")  # the form edits every field but metadata


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


def _in_a_sentence(label: str) -> str:
    return label if label[:2].isupper() else label[0].lower() + label[1:]


def _edit_page(customer: Customer, form: CustomerForm, status: int = 200) -> ResponseReturnValue:
    return render_template("admin/customer_edit.html", customer=customer, form=form), status


@requires("admin")
def customer_edit(customer_id: str) -> ResponseReturnValue:
    with hub().session_factory() as session:
        customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound()
    if request.method == "GET":
        return _edit_page(customer, CustomerForm(obj=customer))
    form = CustomerForm()
    if not form.validate():
        return _edit_page(customer, form, 400)
    changes = form.changes(customer)
    if not changes:
        flash("Nothing changed.", "info")
        return redirect(url_for("admin.customers_detail", customer_id=customer_id))
    try:
        update_customer(UpdateCustomer(customer_id, changes), uow())
    except StateConflict as error:  # the one rule the form cannot know: a currency fixed by subscriptions
        form.currency.errors = [*form.currency.errors, error.message]
        return _edit_page(customer, form, 400)
    except AbohubError as error:
        if not place_field_errors(form, error):
            flash(error.message, "error")
        return _edit_page(customer, form, 400)
    names = ", ".join(_in_a_sentence(form[name].label.text) for name in changes)
    flash(f"{form.name.data} is saved ({names}); connected systems get the change.", "success")
    return redirect(url_for("admin.customers_detail", customer_id=customer_id))


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/customers", "customers", customers)
    blueprint.add_url_rule("/customers/<customer_id>", "customers_detail", customer_detail)
    blueprint.add_url_rule(
        "/customers/<customer_id>/edit", "customers_edit", customer_edit, methods=["GET", "POST"]
    )
