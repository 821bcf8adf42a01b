"""Mappings: every connection's field mappings; one mapping's editor with validate, preview and save.

The editor is one form: the remote object, the match keys, and a row per field pair (local and remote
names, direction, a transform pipeline each way as a line of text — see :mod:`hub.admin.pipelines` — and
the conflict policy). Its three buttons call the same services as the REST API (``hub.api.mappings``):
*Check* validates against the connection and says what saving would re-push, *Preview* shows what the
mapping as typed makes of a real record next to the linked remote record now (nothing is written), and
*Save* stores a new version (audited) and queues the push of the records it changes. Each problem the
services name by path (``fields.2.policy``) is shown next to that row's input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound
from wtforms import BooleanField, FieldList, Form, FormField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from connectors.base import Connector
from hub.admin.auth import requires
from hub.admin.context import actor, hub, uow
from hub.admin.pipelines import EXAMPLE, PipelineSyntaxError, parse, to_text
from hub.domain.errors import AbohubError
from hub.domain.errors import NotFound as RecordNotFound
from hub.services import mappings as service
from hub.services.connections import connector_class
from hub.store.models import Connection, Customer, Link, Plan, Subscription
from jobs.relay import queue_push
from jobs.runtime import make_queue
from mappings import Direction, MappingInvalid, Policy

BLANK_ROWS = 3
PREVIEW_CHOICES = 100
NAME_SEPARATOR = "+"
DIRECTIONS = [
    SelectChoice("", "Choose"),
    SelectChoice(Direction.PUSH.value, "push → remote"),
    SelectChoice(Direction.PULL.value, "pull ← remote"),
    SelectChoice(Direction.BOTH.value, "both ↔"),
]
POLICIES = [
    SelectChoice("", "The source wins"),
    *(SelectChoice(p.value, p.value.replace("_", " ")) for p in Policy),
]
ACTIONS = ("check", "preview", "save")


class KeyRow(Form):
    local = StringField("Local field", validators=[Optional(), Length(max=64)])
    remote = StringField("Remote field", validators=[Optional(), Length(max=100)])


class FieldRow(Form):
    local = StringField("Local field(s)", validators=[Optional(), Length(max=200)])
    remote = StringField("Remote field(s)", validators=[Optional(), Length(max=200)])
    direction = SelectField("Direction", choices=DIRECTIONS, default="")
    to_remote = StringField("To remote", validators=[Optional(), Length(max=2000)])
    to_local = StringField("To local", validators=[Optional(), Length(max=2000)])
    policy = SelectField("Conflict policy", choices=POLICIES, default="")
    remove = BooleanField("Remove")

    def is_blank(self) -> bool:
        typed = (self.local, self.remote, self.to_remote, self.to_local)
        return not (self.direction.data or any((one.data or "").strip() for one in typed))


class MappingForm(FlaskForm):
    remote_object = SelectField("Remote object", validate_choice=False)
    keys = FieldList(FormField(KeyRow), label="Match keys")
    entries = FieldList(FormField(FieldRow), label="Fields")
    local_id = StringField("Record to preview", validators=[Optional(), Length(max=40)])


# --- the document and the form -------------------------------------------------------------------------


def _names_text(value: Any) -> str:
    names = [value] if isinstance(value, str) else list(value or [])
    return f" {NAME_SEPARATOR} ".join(names)


def _names(text: str | None) -> str | list[str] | None:
    names = [part.strip() for part in (text or "").split(NAME_SEPARATOR) if part.strip()]
    if not names:
        return None
    return names[0] if len(names) == 1 else names


def _rows_of(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Form data for a stored document, with blank rows to add field pairs and a key."""
    keys = definition.get("key") or []
    keys = [keys] if isinstance(keys, Mapping) else list(keys)
    entries = [
        {
            "local": _names_text(entry.get("local")),
            "remote": _names_text(entry.get("remote")),
            "direction": entry.get("direction", ""),
            "to_remote": to_text(entry.get("to_remote")),
            "to_local": to_text(entry.get("to_local")),
            # A one-way field's source always wins; the editor shows that as the default, not a choice.
            "policy": entry.get("policy", "") if entry.get("direction") == Direction.BOTH.value else "",
        }
        for entry in definition.get("fields") or []
    ]
    return {
        "remote_object": definition.get("remote_object", ""),
        "keys": [{"local": k.get("local", ""), "remote": k.get("remote", "")} for k in keys]
        + [{"local": "", "remote": ""}],
        "entries": entries + [{}] * BLANK_ROWS,
    }


@dataclass
class Parsed:
    """The document a submitted form stands for, and where each of its entries came from."""

    definition: dict[str, Any]
    entry_rows: list[int] = field(default_factory=list)  # document index → form row index
    key_rows: list[int] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)  # by document path, before any check


def _parse(form: MappingForm) -> Parsed:
    parsed = Parsed({"remote_object": form.remote_object.data or "", "key": [], "fields": []})
    for row_index, row in enumerate(form.keys):
        local, remote = (row.form.local.data or "").strip(), (row.form.remote.data or "").strip()
        if local or remote:
            parsed.key_rows.append(row_index)
            parsed.definition["key"].append({"local": local, "remote": remote})
    for row_index, row in enumerate(form.entries):
        entry_form: FieldRow = row.form
        if entry_form.remove.data or entry_form.is_blank():
            continue
        index = len(parsed.definition["fields"])
        parsed.entry_rows.append(row_index)
        entry: dict[str, Any] = {}
        local = _names(entry_form.local.data)
        if local is not None:
            entry["local"] = local
        entry["remote"] = _names(entry_form.remote.data) or ""
        direction = entry_form.direction.data or ""
        if direction:
            entry["direction"] = direction
        # A pipeline typed for a direction the field does not use has no effect, nor has a policy on a
        # one-way field (its source always wins): they are left out, as the editor's hints say.
        for name, used in (
            ("to_remote", direction in (Direction.PUSH, Direction.BOTH)),
            ("to_local", direction in (Direction.PULL, Direction.BOTH)),
        ):
            if not used:
                continue
            try:
                entry[name] = parse(getattr(entry_form, name).data or "")
            except PipelineSyntaxError as error:
                parsed.problems.setdefault(f"fields.{index}.{name}", []).append(str(error))
        if entry_form.policy.data and direction == Direction.BOTH:
            entry["policy"] = entry_form.policy.data
        parsed.definition["fields"].append(entry)
    return parsed


ROW_INPUTS = {"local", "remote", "direction", "to_remote", "to_local", "policy"}


def _place_errors(form: MappingForm, parsed: Parsed, problems: Mapping[str, list[str]]) -> list[str]:
    """Put each problem next to the input it is about; the rest are returned for the top of the form."""
    general: list[str] = []
    for path, messages in problems.items():
        parts = path.split(".")
        target = None
        if parts[0] == "remote_object":
            target = form.remote_object
        elif parts[0] in ("fields", "key") and len(parts) > 1 and parts[1].isdigit():
            rows, forms = (
                (parsed.entry_rows, form.entries) if parts[0] == "fields" else (parsed.key_rows, form.keys)
            )
            index = int(parts[1])
            if index < len(rows):
                row = forms[rows[index]].form
                name = parts[2] if len(parts) > 2 else ""
                target = getattr(row, name, None) if name in ROW_INPUTS else None
                if target is None:
                    label = "field pair" if parts[0] == "fields" else "match key"
                    general.extend(f"{label} {rows[index] + 1}: {m}" for m in messages)
                    continue
        if target is None:
            where = "" if parts[0] in ("_schema", "") else f"{path}: "
            general.extend(f"{where}{m}" for m in messages)
            continue
        target.errors = [*target.errors, *messages]
    return general


# --- pages ---------------------------------------------------------------------------------------------


def _connection(session: Session, connection_id: str) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise NotFound()
    return connection


def _offered(cls: type[Connector], object_type: str) -> list[str]:
    return [one.name for one in cls.object_types if one.local == object_type]


def _default_definition(cls: type[Connector], object_type: str) -> dict[str, Any]:
    for shipped in cls.default_mappings():
        if shipped.get("object_type") == object_type:
            return shipped
    offered = _offered(cls, object_type)
    return {"object_type": object_type, "remote_object": offered[0] if offered else "", "fields": []}


def mappings() -> ResponseReturnValue:
    with hub().session_factory() as session:
        connections = list(session.scalars(select(Connection).order_by(Connection.name, Connection.id)))
        groups = []
        for connection in connections:
            views = service.list_mappings(session, connection.id)
            cls = _installed(connection.connector)
            mapped = {view.object_type for view in views}
            missing = sorted({one.local for one in cls.object_types} - mapped) if cls else []
            groups.append((connection, views, missing))
    return render_template("admin/mappings.html", groups=groups)


def _installed(name: str) -> type[Connector] | None:
    try:
        return connector_class(name)
    except AbohubError:
        return None


def _record_choices(session: Session, connection_id: str, object_type: str) -> list[tuple[str, str]]:
    """Records to preview on: the linked ones first (they show the remote side too), newest first."""
    linked = select(Link.local_id).where(Link.connection_id == connection_id, Link.object_type == object_type)
    if object_type == "customer":
        query = select(Customer.id, Customer.name, Customer.email, Customer.id.in_(linked))
        order = [Customer.id.in_(linked).desc(), Customer.created_at.desc()]
        rows = session.execute(query.order_by(*order).limit(PREVIEW_CHOICES))
        return [
            (id_, f"{name} <{email}>{'' if is_linked else ' (not linked)'}")
            for id_, name, email, is_linked in rows
        ]
    if object_type == "subscription":
        query = (
            select(Subscription.id, Plan.name, Customer.name, Subscription.id.in_(linked))
            .join(Plan, Plan.id == Subscription.plan_id)
            .join(Customer, Customer.id == Subscription.customer_id)
        )
        order = [Subscription.id.in_(linked).desc(), Subscription.created_at.desc()]
        rows = session.execute(query.order_by(*order).limit(PREVIEW_CHOICES))
        return [
            (id_, f"{plan} · {customer}{'' if is_linked else ' (not linked)'}")
            for id_, plan, customer, is_linked in rows
        ]
    return []


def _render(
    connection_id: str,
    object_type: str,
    form: MappingForm | None = None,
    *,
    status: int = 200,
    general: list[str] | None = None,
    checked: service.Checked | None = None,
    preview: service.Preview | None = None,
) -> ResponseReturnValue:
    with hub().session_factory() as session:
        connection = _connection(session, connection_id)
        cls = _installed(connection.connector)
        if cls is None or object_type not in service.LOCAL_FIELDS:
            raise NotFound()
        try:
            stored: service.MappingView | None = service.get_mapping(session, connection_id, object_type)
        except RecordNotFound:
            stored = None
        if form is None:
            definition = stored.definition if stored else _default_definition(cls, object_type)
            form = MappingForm(formdata=None, data=_rows_of(definition))
        form.remote_object.choices = [SelectChoice(name, name) for name in _offered(cls, object_type)]
        records = _record_choices(session, connection_id, object_type)
        if records and not form.local_id.data and not form.local_id.errors:
            form.local_id.data = records[0][0]  # Preview works at once, on a linked record when there is one
        known = sorted(service.known_fields(session, cls, object_type) or ())
        connection_name = connection.name
    page = render_template(
        "admin/mapping_edit.html",
        connection_id=connection_id,
        connection_name=connection_name,
        connector_title=cls.title,
        object_type=object_type,
        stored=stored,
        form=form,
        general=general or [],
        checked=checked,
        preview=preview,
        records=records,
        known_fields=known,
        pipeline_example=EXAMPLE,
    )
    return page, status


def mapping_edit(connection_id: str, object_type: str) -> ResponseReturnValue:
    return _render(connection_id, object_type)


@requires("admin")
def mapping_submit(connection_id: str, object_type: str) -> ResponseReturnValue:
    form = MappingForm()
    action = request.form.get("action", "")
    if action not in ACTIONS:
        return _render(
            connection_id, object_type, form, status=400, general=["choose check, preview or save"]
        )
    if not form.validate():
        return _render(connection_id, object_type, form, status=400, general=_form_errors(form))
    parsed = _parse(form)
    if parsed.problems:
        general = _place_errors(form, parsed, parsed.problems)
        return _render(connection_id, object_type, form, status=400, general=general)
    try:
        return _act(action, connection_id, object_type, form, parsed)
    except MappingInvalid as invalid:
        problems = {
            path.removeprefix("definition."): messages for path, messages in invalid.fields.items()
        } or {"_schema": [invalid.message]}
        general = _place_errors(form, parsed, problems)
        return _render(connection_id, object_type, form, status=400, general=general)
    except AbohubError as error:
        if "local_id" in error.fields:
            form.local_id.errors = [*form.local_id.errors, *error.fields["local_id"]]
            return _render(connection_id, object_type, form, status=400)
        return _render(connection_id, object_type, form, status=400, general=[error.message])


def _form_errors(form: MappingForm) -> list[str]:
    """Length and choice problems are shown by their inputs; this keeps a summary at the top."""
    return ["some inputs are not valid; see the messages next to them"] if form.errors else []


def _act(
    action: str, connection_id: str, object_type: str, form: MappingForm, parsed: Parsed
) -> ResponseReturnValue:
    definition = parsed.definition
    if action == "check":
        with hub().session_factory() as session:
            checked = service.check_mapping(
                session, service.SaveMapping(connection_id, object_type, definition)
            )
        return _render(connection_id, object_type, form, checked=checked)
    if action == "preview":
        local_id = (form.local_id.data or "").strip()
        if not local_id:
            form.local_id.errors = [*form.local_id.errors, "choose a record to preview the mapping on"]
            general = ["choose a record to preview on, under Record to preview"]
            return _render(connection_id, object_type, form, status=400, general=general)
        cmd = service.PreviewMapping(connection_id, object_type, local_id, definition)
        preview = service.preview_mapping(cmd, hub(), actor())
        return _render(connection_id, object_type, form, preview=preview)
    saved = service.save_mapping(service.SaveMapping(connection_id, object_type, definition), uow())
    if saved.requeued:
        queue_push(make_queue(hub()), connection_id, object_type)
    if not saved.changed:
        flash("Nothing changed: this is the mapping already in use.", "info")
    elif saved.requeued:
        flash(
            f"Saved as version {saved.mapping.version}; {saved.requeued} linked record(s) will be pushed "
            "again (only the values that differ are sent). A dead letter of a record that goes through "
            "is settled by it.",
            "success",
        )
    else:
        flash(f"Saved as version {saved.mapping.version}.", "success")
    return redirect(url_for("admin.mappings_edit", connection_id=connection_id, object_type=object_type))


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/mappings", "mappings", mappings)
    blueprint.add_url_rule(
        "/connections/<connection_id>/mappings/<object_type>", "mappings_edit", mapping_edit
    )
    blueprint.add_url_rule(
        "/connections/<connection_id>/mappings/<object_type>",
        "mappings_submit",
        mapping_submit,
        methods=["POST"],
    )
