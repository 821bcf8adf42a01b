"""The audit log: who changed what, when, for every record of the hub; one event with what it changed.

Every role reads it; nothing here changes anything. A staff actor (``staff:<user id>``) is shown by the
user's username, looked up once per page; other actors (``cli:demo``, ``sync:<connection id>``,
``api_key:<key id>``, ``system``) as they are recorded. The services already redact secrets before they
record an event; as defence in depth the pages mask any value whose key names a secret as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import Select, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional, ValidationError

from hub.admin.context import hub
from hub.admin.tables import Sorting, paged
from hub.services.users import normalise_username
from hub.store.models import Connection, Customer, Event, StaffUser, Subscription

SORTING = Sorting(
    {"occurred": Event.occurred_at, "type": Event.type}, default="occurred", default_descending=True
)
STAFF = "staff:"
LARGEST_ID = 2**63 - 1  # a BIGINT: a larger id in the address is simply not there
SECRET_WORDS = ("password", "secret", "token", "api_key")
MASK = "***"
ABSENT = "–"


@dataclass(frozen=True)
class RecordPage:
    """The admin page of one kind of record: its endpoint, the argument naming it, the model to check."""

    endpoint: str
    argument: str
    model: type[Customer] | type[Subscription] | type[Connection]


RECORD_PAGES = {
    "customer": RecordPage("admin.customers_detail", "customer_id", Customer),
    "subscription": RecordPage("admin.subscriptions_detail", "subscription_id", Subscription),
    "connection": RecordPage("admin.connections_detail", "connection_id", Connection),
}


class AuditFilterForm(FlaskForm):
    """The log's filters, read from the query string; the dates are whole UTC days, both included."""

    class Meta:
        csrf = False

    actor = StringField(
        "Who",
        validators=[Optional(), Length(max=100)],
        render_kw={"placeholder": "Username or cli:demo"},
    )
    type = StringField(
        "What", validators=[Optional(), Length(max=64)], render_kw={"placeholder": "subscription."}
    )
    record_type = SelectField("Record type", default="")
    record_id = StringField("Record id", validators=[Optional(), Length(max=40)])
    customer = StringField("Customer id", validators=[Optional(), Length(max=40)])
    from_date = DateField("From", validators=[Optional()])
    to_date = DateField("To", validators=[Optional()])

    def validate_to_date(self, field: DateField) -> None:
        if field.data and self.from_date.data and field.data < self.from_date.data:
            raise ValidationError("must not be before the from date")


@dataclass(frozen=True)
class AuditRow:
    """One event as the log shows it: who by name, and where its record and customer live in the admin."""

    event: Event
    who: str
    record_url: str | None
    customer_name: str | None
    customer_url: str | None


@dataclass(frozen=True)
class Change:
    """One field of a before/after pair, its values shown as text."""

    field: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


# --- what a value looks like --------------------------------------------------------------------------------


def is_secret(key: object) -> bool:
    name = str(key).lower()
    return any(word in name for word in SECRET_WORDS)


def masked(value: Any) -> Any:
    """``value`` with everything under a secret-named key replaced by ``***``, at any depth."""
    if isinstance(value, Mapping):
        return {key: MASK if is_secret(key) else masked(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [masked(inner) for inner in value]
    return value


def shown(value: Any) -> str:
    """A recorded value as text: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Every field of either side, in the order they were recorded; a missing side shows a dash."""
    fields = list(dict.fromkeys([*before, *after]))
    return [
        Change(
            name,
            shown(before[name]) if name in before else ABSENT,
            shown(after[name]) if name in after else ABSENT,
        )
        for name in fields
    ]


# --- who, and where a record lives ------------------------------------------------------------------------


def staff_actor(session: Session, text: str) -> str | None:
    """The actor a filter means: given whole (``cli:demo``) as it is; a username as ``staff:<id>``."""
    if ":" in text:
        return text
    user_id = session.scalar(select(StaffUser.id).where(StaffUser.username == normalise_username(text)))
    return f"{STAFF}{user_id}" if user_id else None


def usernames(session: Session, actors: Iterable[str]) -> dict[str, str]:
    """``staff:<id>`` → the user's username, in one query."""
    ids = {actor.removeprefix(STAFF) for actor in actors if actor.startswith(STAFF)}
    if not ids:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.username).where(StaffUser.id.in_(ids)))
    return {f"{STAFF}{user_id}": username for user_id, username in rows}


def existing(session: Session, events: Iterable[Event]) -> set[tuple[str, str]]:
    """(record type, id) of the events' records that still have an admin page, one query per kind."""
    wanted: dict[str, set[str]] = {}
    for event in events:
        if event.aggregate_type in RECORD_PAGES:
            wanted.setdefault(event.aggregate_type, set()).add(event.aggregate_id)
    found = set()
    for kind, ids in wanted.items():
        model = RECORD_PAGES[kind].model
        found |= {
            (kind, record_id) for record_id in session.scalars(select(model.id).where(model.id.in_(ids)))
        }
    return found


def customer_names(session: Session, events: Iterable[Event]) -> dict[str, str]:
    ids = {event.customer_id for event in events if event.customer_id}
    if not ids:
        return {}
    rows = session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(ids)))
    return {customer_id: name for customer_id, name in rows}


def record_url(kind: str, record_id: str, found: set[tuple[str, str]]) -> str | None:
    page = RECORD_PAGES.get(kind)
    if page is None or (kind, record_id) not in found:
        return None
    return url_for(page.endpoint, **{page.argument: record_id})


def audit_rows(session: Session, events: list[Event]) -> list[AuditRow]:
    """The events with their people, records and customers looked up once for all of them."""
    names = usernames(session, (event.actor for event in events))
    customers = customer_names(session, events)
    found = existing(session, events) | {("customer", customer_id) for customer_id in customers}
    return [
        AuditRow(
            event=event,
            who=names.get(event.actor, event.actor),
            record_url=record_url(event.aggregate_type, event.aggregate_id, found),
            customer_name=customers.get(event.customer_id or ""),
            customer_url=record_url("customer", event.customer_id or "", found),
        )
        for event in events
    ]


# --- the pages --------------------------------------------------------------------------------------------


def record_type_choices(session: Session) -> list[SelectChoice]:
    kinds = session.scalars(select(Event.aggregate_type).distinct().order_by(Event.aggregate_type))
    return [SelectChoice("", "Any"), *(SelectChoice(kind, kind) for kind in kinds)]


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def matching(filters: Mapping[str, Any], actor: str) -> Select[Any]:
    """The events the filters ask for; ``actor`` is the one "Who" means (a username made ``staff:<id>``)."""
    query = select(Event)
    if actor:
        query = query.where(Event.actor == actor)
    if filters["type"]:
        query = query.where(Event.type.startswith(filters["type"], autoescape=True))
    if filters["record_type"]:
        query = query.where(Event.aggregate_type == filters["record_type"])
    if filters["record_id"]:
        query = query.where(Event.aggregate_id == filters["record_id"])
    if filters["customer"]:
        query = query.where(Event.customer_id == filters["customer"])
    if filters["from_date"]:
        query = query.where(Event.occurred_at >= start_of(filters["from_date"]))
    if filters["to_date"]:
        query = query.where(Event.occurred_at < start_of(filters["to_date"] + timedelta(days=1)))
    return query


def filters_of(form: AuditFilterForm, valid: bool) -> dict[str, Any]:
    """The filters a valid form asks for; none at all when it is not valid."""

    def text(value: str | None) -> str:
        return (value or "").strip() if valid else ""

    return {
        "actor": text(form.actor.data),
        "type": text(form.type.data),
        "record_type": text(form.record_type.data),
        "record_id": text(form.record_id.data),
        "customer": text(form.customer.data),
        "from_date": form.from_date.data if valid else None,
        "to_date": form.to_date.data if valid else None,
    }


def actor_of(session: Session, form: AuditFilterForm) -> str:
    """The actor the "Who" field means; a field error when it is a username no staff user has."""
    text = (form.actor.data or "").strip()
    if not text:
        return ""
    actor = staff_actor(session, text)
    if actor is None:
        form.actor.errors = [*form.actor.errors, "no staff user has this username"]
        return ""
    return actor


def audit() -> ResponseReturnValue:
    form = AuditFilterForm(formdata=request.args or None)
    with hub().session_factory() as session:
        form.record_type.choices = record_type_choices(session)
        valid = not request.args or form.validate()
        actor = actor_of(session, form) if valid else ""
        valid = valid and not form.actor.errors
        filters = filters_of(form, valid)
        args = {
            key: value.isoformat() if isinstance(value, date) else value for key, value in filters.items()
        }
        table = paged(session, matching(filters, actor), SORTING, Event.id, request.args, args)
        table = replace(table, rows=audit_rows(session, [event for (event,) in table.rows]))
    return render_template("admin/audit.html", form=form, table=table), 200 if valid else 400


def audit_detail(event_id: int) -> ResponseReturnValue:
    with hub().session_factory() as session:
        event = session.get(Event, event_id) if event_id <= LARGEST_ID else None
        if event is None:
            raise NotFound()
        [row] = audit_rows(session, [event])
    data = masked(event.data) if isinstance(event.data, Mapping) else {}
    before, after = data.get("before"), data.get("after")
    diff = changes(before, after) if isinstance(before, Mapping) and isinstance(after, Mapping) else None
    rest = {
        key: shown(value) for key, value in data.items() if diff is None or key not in ("before", "after")
    }
    return render_template("admin/audit_event.html", row=row, diff=diff, rest=rest)


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/audit", "audit", audit)
    blueprint.add_url_rule("/audit/<int:event_id>", "audit_detail", audit_detail)
