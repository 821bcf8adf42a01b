"""Connections: every configured connector with its health and webhook URL; add, edit, test, switch, delete.

The add and edit forms are built from the connector's config schema as
:func:`hub.services.connection_status.describe_connector` describes it: one input per field, typed after
it, required ones marked, the description as a hint. A secret is a password input that is never filled
in: editing leaves an empty one as it is stored, and the pages show a stored secret as ``***`` only.
Every change calls the same service as the REST API (``hub.api.connections``) through a unit of work
acting as the staff user; the service's objections about a config field land next to that field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    FloatField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    URLField,
)
from wtforms.fields.core import UnboundField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, StopValidation

from hub.admin.auth import requires
from hub.admin.context import hub, uow
from hub.admin.forms import ActionForm
from hub.domain.errors import AbohubError, InvalidRequest, StateConflict
from hub.domain.errors import NotFound as RecordNotFound
from hub.services import connection_status
from hub.services.connection_status import ConnectionView
from hub.services.connections import (
    HIDDEN,
    CreateConnection,
    UpdateConnection,
    connector_class,
    create_connection,
    delete_connection,
    update_connection,
)
from hub.store.models import Connection, Event

PREFIX = "config_"  # a config field's input is named after it, apart from the connection's own name
KEEP_HINT = "leave empty to keep the stored value; type a new one to replace it"
EMPTY_HINT = "nothing is stored; type a value to store one"
TEXT_LIMIT = 2000
EVENT_LIMIT = 20
WORDS = {"url": "URL", "id": "ID", "api": "API", "oauth": "OAuth", "vat": "VAT"}


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _parsed(form: FlaskForm, field: Field) -> None:
    """Stop at a value that is not a number: "not a valid integer" says it all, a range check adds nothing."""
    if field.process_errors:
        raise StopValidation()


def label_of(name: str) -> str:
    """``access_token`` → "Access token", ``base_url`` → "Base URL"."""
    words = [WORDS.get(word, word) for word in name.split("_") if word]
    if not words:
        return name
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


# --- the form built from the connector's description ------------------------------------------------------


class ConnectionForm(FlaskForm):
    """The connection's name; :func:`form_class` adds one field per config field of its connector."""

    name = StringField("Name (required)", validators=[DataRequired(), Length(max=200)], filters=[_strip])


@dataclass(frozen=True)
class ConfigInput:
    """One described config field and the form field that edits it."""

    described: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.described["name"])

    @property
    def key(self) -> str:
        return PREFIX + self.name

    @property
    def secret(self) -> bool:
        return bool(self.described.get("secret"))

    @property
    def kind(self) -> str:
        return str(self.described.get("type") or "string")

    @property
    def choices(self) -> dict[str, Any]:
        """The option values (text) and the config values they stand for."""
        return {str(choice): choice for choice in self.described.get("choices") or []}

    def hint(self, stored: Mapping[str, Any] | None) -> str:
        parts = [str(self.described["description"])] if self.described.get("description") else []
        if self.secret and stored is not None:
            parts.append(KEEP_HINT if stored.get(self.name) == HIDDEN else EMPTY_HINT)
        joined = " · ".join(parts)
        return joined[:1].upper() + joined[1:]

    def field(self, stored: Mapping[str, Any] | None) -> UnboundField:
        """The form field; ``stored`` is the redacted config of the connection being edited (None: adding)."""
        required = bool(self.described.get("required")) and not (self.secret and stored is not None)
        label = label_of(self.name) + (" (required)" if required else "")
        hint = self.hint(stored)
        default = None if self.secret else self.described.get("default")
        if self.secret:
            return PasswordField(
                label,
                validators=[DataRequired() if required else Optional(), Length(max=TEXT_LIMIT)],
                filters=[_strip],
                description=hint,
                render_kw={"autocomplete": "new-password"},  # never the browser's saved admin password
            )
        if self.choices:
            options = [SelectChoice(value, value) for value in self.choices]
            if not required:
                options.insert(0, SelectChoice("", "Not set"))
            return SelectField(
                label,
                choices=options,
                default=None if default is None else str(default),
                validators=[InputRequired()] if required else [Optional()],
                description=hint,
            )
        if self.kind == "boolean":
            return BooleanField(label, default=bool(default), description=hint)
        if self.kind in ("integer", "number"):
            numeric: type[IntegerField] | type[FloatField] = (
                IntegerField if self.kind == "integer" else FloatField
            )
            lowest, highest = self.described.get("minimum"), self.described.get("maximum")
            rules: list[Any] = [InputRequired() if required else Optional(), _parsed]
            if lowest is not None or highest is not None:
                rules.append(NumberRange(min=lowest, max=highest))
            return numeric(label, validators=rules, default=default, description=hint)
        text: type[StringField] = {"url": URLField, "email": EmailField}.get(self.kind, StringField)
        return text(
            label,
            validators=[DataRequired() if required else Optional(), Length(max=TEXT_LIMIT)],
            filters=[_strip],
            default=default,
            description=hint,
        )

    def value(self, form: FlaskForm) -> tuple[bool, Any]:
        """Whether the form gives this field, and its config value (empty: the default or what is stored)."""
        data = form[self.key].data
        if self.kind == "boolean" and not self.choices:
            return True, bool(data)  # an unticked box is false, not "not given"
        if data is None or data == "":
            return False, None
        return True, self.choices.get(data, data) if self.choices else data

    def initial(self, stored: Mapping[str, Any]) -> Any:
        """The input's value when editing: the stored value, never a secret."""
        value = stored.get(self.name)
        if self.secret or value is None:
            return None
        return str(value) if self.choices else value


def config_inputs(description: Mapping[str, Any]) -> list[ConfigInput]:
    return [ConfigInput(described) for described in description["config"]]


def form_class(inputs: list[ConfigInput], stored: Mapping[str, Any] | None = None) -> type[ConnectionForm]:
    """A form class for one connector: the name, then its config fields in the schema's order."""

    class ConfigForm(ConnectionForm):
        pass

    for one in inputs:
        setattr(ConfigForm, one.key, one.field(stored))
    return ConfigForm


def config_of(form: FlaskForm, inputs: list[ConfigInput]) -> dict[str, Any]:
    """The config the form gives: fields left empty are left out."""
    config = {}
    for one in inputs:
        given, value = one.value(form)
        if given:
            config[one.name] = value
    return config


def place_errors(form: FlaskForm, error: AbohubError) -> list[str]:
    """Put the service's ``config.<name>`` messages next to their inputs; its summary and the messages of no
    input (``config._schema``) are for the top of the form."""
    general: list[str] = []
    for path, messages in error.fields.items():
        key = PREFIX + path.removeprefix("config.")
        texts = [str(message) for message in messages]
        if path.startswith("config.") and key in form:
            form[key].errors = [*form[key].errors, *texts]
        elif path == "name":
            form["name"].errors = [*form["name"].errors, *texts]
        else:
            general.extend(texts)
    return [error.message, *general]


class DeleteForm(FlaskForm):
    confirm = BooleanField(
        "Yes, delete this connection with its mappings, links, sync states, conflicts and dead letters",
        validators=[DataRequired(message="tick the box to confirm the deletion")],
    )


# --- reading ----------------------------------------------------------------------------------------------


def webhook_url(connection_id: str) -> str:
    return url_for("webhooks.receive", connection_id=connection_id, _external=True)


def _description(connector: str) -> dict[str, Any] | None:
    """The installed connector's description, or None when it is no longer installed."""
    try:
        return connection_status.describe_connector(connector_class(connector))
    except InvalidRequest:
        return None


def _view(connection_id: str) -> ConnectionView:
    with hub().session_factory() as session:
        return connection_status.view_connection(session, hub().settings, connection_id)


def _name_of(connection_id: str) -> str:
    with hub().session_factory() as session:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise RecordNotFound(f"no connection {connection_id}")
        return connection.name


def _events(connection_id: str) -> list[Event]:
    query = (
        select(Event)
        .where(Event.aggregate_type == "connection", Event.aggregate_id == connection_id)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(EVENT_LIMIT)
    )
    with hub().session_factory() as session:
        return list(session.scalars(query))


def _config_rows(view: ConnectionView, description: Mapping[str, Any] | None) -> list[tuple[str, Any, bool]]:
    """(label, shown value, secret) for each config field, in the schema's order when it is installed."""
    inputs = config_inputs(description) if description else []
    secret = {one.name for one in inputs if one.secret}
    names = [one.name for one in inputs]
    names += [name for name in view.config if name not in names]
    rows = []
    for name in names:
        value = view.config.get(name)  # redacted: a stored secret is "***"
        rows.append((label_of(name), value, name in secret or value == HIDDEN))
    return rows


def connections() -> ResponseReturnValue:
    with hub().session_factory() as session:
        rows = list(session.scalars(select(Connection).order_by(Connection.name, Connection.id)))
        views = connection_status.view_connections(session, hub().settings, rows)
    return render_template(
        "admin/connections.html",
        connections=views,
        connectors=connection_status.installed_connectors(),
        webhook_url=webhook_url,
    )


def _detail_page(
    connection_id: str, delete_form: DeleteForm | None = None, status: int = 200
) -> ResponseReturnValue:
    view = _view(connection_id)
    description = _description(view.connector)
    page = render_template(
        "admin/connection.html",
        view=view,
        title=description["title"] if description else view.connector,
        installed=description is not None,
        config_rows=_config_rows(view, description),
        webhook_url=webhook_url(view.id),
        events=_events(view.id),
        event_limit=EVENT_LIMIT,
        action=ActionForm(formdata=None),
        delete_form=delete_form or DeleteForm(formdata=None),
    )
    return page, status


def connections_detail(connection_id: str) -> ResponseReturnValue:
    return _detail_page(connection_id)


# --- adding and editing -----------------------------------------------------------------------------------


def _form_page(
    status: int = 200,
    *,
    heading: str,
    form: ConnectionForm | None = None,
    inputs: list[ConfigInput] | None = None,
    general: list[str] | None = None,
    **context: Any,
) -> ResponseReturnValue:
    fields = [form[one.key] for one in inputs or []] if form else []
    page = render_template(
        "admin/connection_form.html",
        heading=heading,
        form=form,
        config_fields=fields,
        general=general or [],
        **context,
    )
    return page, status


def _described(connector: str) -> tuple[dict[str, Any], list[ConfigInput]]:
    description = connection_status.describe_connector(connector_class(connector))  # unknown: a 400 page
    return description, config_inputs(description)


def connections_new() -> ResponseReturnValue:
    chosen = request.args.get("connector", "")
    if request.method == "POST":
        return _create(chosen)
    if not chosen or not current_user.is_admin:
        return _form_page(heading="Add a connection", connectors=connection_status.installed_connectors())
    description, inputs = _described(chosen)
    return _new_page(description, inputs, form_class(inputs)())


def _new_page(
    description: Mapping[str, Any],
    inputs: list[ConfigInput],
    form: ConnectionForm,
    general: list[str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    return _form_page(
        status,
        heading=f"Add a {description['title']} connection",
        form=form,
        inputs=inputs,
        general=general,
        submit="Add the connection",
        action_url=url_for("admin.connections_new", connector=description["name"]),
        back_url=url_for("admin.connections"),
        back_label="All connections",
    )


@requires("admin")
def _create(connector: str) -> ResponseReturnValue:
    description, inputs = _described(connector)
    form = form_class(inputs)()
    if not form.validate():
        return _new_page(description, inputs, form, status=400)
    command = CreateConnection(description["name"], form.name.data or "", config_of(form, inputs))
    try:
        created = create_connection(command, uow())
    except InvalidRequest as error:
        return _new_page(description, inputs, form, place_errors(form, error), 400)
    flash(f"{created.name} is added. Test it to check that the credentials work.", "success")
    return redirect(url_for("admin.connections_detail", connection_id=created.id))


def connections_edit(connection_id: str) -> ResponseReturnValue:
    view = _view(connection_id)
    description = _description(view.connector)
    if description is None or not current_user.is_admin:
        reason = (
            f"The connector {view.connector} is not installed: its configuration cannot be changed."
            if description is None
            else "Only an admin changes a connection."
        )
        return _form_page(
            heading=f"Edit {view.name}",
            notice=reason,
            back_url=url_for("admin.connections_detail", connection_id=view.id),
            back_label=f"Back to {view.name}",
        )
    inputs = config_inputs(description)
    cls = form_class(inputs, view.config)
    if request.method == "POST":
        return _update(view, inputs, cls)
    initial = {"name": view.name, **{one.key: one.initial(view.config) for one in inputs}}
    return _edit_page(view, inputs, cls(data=initial))


def _edit_page(
    view: ConnectionView,
    inputs: list[ConfigInput],
    form: ConnectionForm,
    general: list[str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    return _form_page(
        status,
        heading=f"Edit {view.name}",
        form=form,
        inputs=inputs,
        general=general,
        submit="Save",
        action_url=url_for("admin.connections_edit", connection_id=view.id),
        back_url=url_for("admin.connections_detail", connection_id=view.id),
        back_label=f"Back to {view.name}",
    )


@requires("admin")
def _update(
    view: ConnectionView, inputs: list[ConfigInput], cls: type[ConnectionForm]
) -> ResponseReturnValue:
    form = cls()
    if not form.validate():
        return _edit_page(view, inputs, form, status=400)
    # Secrets left empty are left out of the config, and the service keeps what it stores for them.
    command = UpdateConnection(view.id, name=form.name.data, config=config_of(form, inputs))
    try:
        updated = update_connection(command, uow())
    except InvalidRequest as error:
        return _edit_page(view, inputs, form, place_errors(form, error), 400)
    flash(f"{updated.name} is saved.", "success")
    return redirect(url_for("admin.connections_detail", connection_id=view.id))


# --- actions ----------------------------------------------------------------------------------------------


def _back(connection_id: str) -> ResponseReturnValue:
    return redirect(url_for("admin.connections_detail", connection_id=connection_id))


@requires("admin")
def connections_test(connection_id: str) -> ResponseReturnValue:
    name = _name_of(connection_id)
    try:
        result = connection_status.check_connection(uow(), connection_id)
    except InvalidRequest as error:  # its connector is no longer installed
        flash(f"{name} could not be tested: {error.message}", "error")
        return _back(connection_id)
    if result.ok:
        flash(f"{name} works ({result.duration_ms} ms).", "success")
    else:
        answered = f" (the remote side answered {result.status})" if result.status else ""
        flash(f"{name} does not work: {result.error_type}{answered}: {result.message}", "error")
    return _back(connection_id)


def _switch(connection_id: str, enabled: bool, done: Callable[[str], str]) -> ResponseReturnValue:
    connection = update_connection(UpdateConnection(connection_id, enabled=enabled), uow())
    flash(done(connection.name), "success")
    return _back(connection_id)


@requires("admin")
def connections_enable(connection_id: str) -> ResponseReturnValue:
    return _switch(connection_id, True, lambda name: f"{name} is enabled: it syncs again.")


@requires("admin")
def connections_disable(connection_id: str) -> ResponseReturnValue:
    return _switch(
        connection_id, False, lambda name: f"{name} is disabled: nothing syncs until it is enabled."
    )


@requires("admin")
def connections_delete(connection_id: str) -> ResponseReturnValue:
    name = _name_of(connection_id)
    form = DeleteForm()
    if not form.validate():
        return _detail_page(connection_id, form, 400)
    try:
        delete_connection(uow(), connection_id)
    except StateConflict as error:  # it is still enabled
        flash(f"{name} was not deleted: {error.message}.", "error")
        return _back(connection_id)
    flash(f"{name} is deleted, with everything the hub kept for it.", "success")
    return redirect(url_for("admin.connections"))


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/connections", "connections", connections)
    blueprint.add_url_rule("/connections/new", "connections_new", connections_new, methods=["GET", "POST"])
    blueprint.add_url_rule("/connections/<connection_id>", "connections_detail", connections_detail)
    blueprint.add_url_rule(
        "/connections/<connection_id>/edit", "connections_edit", connections_edit, methods=["GET", "POST"]
    )
    for action, view in (
        ("test", connections_test),
        ("enable", connections_enable),
        ("disable", connections_disable),
        ("delete", connections_delete),
    ):
        blueprint.add_url_rule(
            f"/connections/<connection_id>/{action}", f"connections_{action}", view, methods=["POST"]
        )
