"""Conflicts: the queue of fields both sides changed differently, and their resolution.

Resolving calls the same service as the REST API (``hub.api.conflicts``) acting as the staff user. A domain
error about the edited value lands next to that row's value field; any other refusal, or a remote side that
fails, becomes a flash message: never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import and_, select
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from connectors.errors import ConnectorError
from hub.admin.auth import requires
from hub.admin.context import actor, hub
from hub.admin.forms import ActionForm
from hub.admin.tables import Sorting, paged
from hub.domain.errors import AbohubError
from hub.services.conflicts import ResolveConflict, resolve_conflict
from hub.store.models import Conflict, Connection, Customer

log = logging.getLogger(__name__)

SORTING = Sorting({"created": Conflict.created_at}, default="created", default_descending=True)
CHOICE_LABELS = {
    "hub": "Kept the hub's value",
    "remote": "Took the remote value",
    "value": "Set an edited value",
}


def connection_choices() -> list[SelectChoice]:
    with hub().session_factory() as session:
        connections = session.execute(select(Connection.id, Connection.name).order_by(Connection.name))
        return [SelectChoice("", "Any"), *(SelectChoice(id_, name) for id_, name in connections)]


class ConflictFilterForm(FlaskForm):
    class Meta:
        csrf = False

    connection_id = SelectField("Connection", default="")
    status = SelectField(
        "Status",
        choices=[SelectChoice("open", "Open"), SelectChoice("resolved", "Resolved")],
        default="open",
    )


class ResolveForm(FlaskForm):
    choice = SelectField(
        "Choice",
        choices=[SelectChoice(c, c) for c in CHOICE_LABELS],
    )
    value = StringField("Edited value", validators=[Optional(), Length(max=500)])


class BulkResolveForm(FlaskForm):
    choice = SelectField("Choice", choices=[SelectChoice("hub", "hub"), SelectChoice("remote", "remote")])


def _list_page(status: int = 200, value_errors: dict[str, list[str]] | None = None) -> ResponseReturnValue:
    form = ConflictFilterForm(formdata=request.args or None)
    form.connection_id.choices = connection_choices()
    valid = not request.args or form.validate()
    connection_id = form.connection_id.data if valid else ""
    state = form.status.data if valid else "open"
    query = (
        select(Conflict, Connection.name, Customer.name)
        .join(Connection, Connection.id == Conflict.connection_id)
        .outerjoin(Customer, and_(Conflict.object_type == "customer", Customer.id == Conflict.local_id))
        .where(Conflict.status == state)
    )
    if connection_id:
        query = query.where(Conflict.connection_id == connection_id)
    filters = {"connection_id": connection_id or "", "status": state}
    with hub().session_factory() as session:
        table = paged(session, query, SORTING, Conflict.id, request.args, filters)
    page = render_template(
        "admin/conflicts.html",
        form=form,
        table=table,
        action=ActionForm(formdata=None),
        value_errors=value_errors or {},
        choice_labels=CHOICE_LABELS,
    )
    return page, status if valid else 400


def conflicts() -> ResponseReturnValue:
    return _list_page()


def _edited_value(conflict_id: str, text: str) -> dict[str, Any]:
    """The edited text as the conflicting field's local value (``{"name": "Karen Holm"}``)."""
    with hub().session_factory() as session:
        conflict = session.get(Conflict, conflict_id)
        fields = sorted((conflict.hub_value or conflict.remote_value).keys()) if conflict else []
    return {name: text for name in fields[:1]}


def _resolve(conflict_id: str, choice: str, value: dict[str, Any] | None) -> str | None:
    """Resolve one conflict; the reason it was refused, or None when it went through."""
    try:
        resolve_conflict(ResolveConflict(conflict_id, choice, value), hub(), actor())
    except AbohubError as error:
        details = "; ".join(m for messages in error.fields.values() for m in messages)
        return f"{error.message}: {details}" if details else error.message
    except ConnectorError as error:
        log.warning("resolving conflict %s failed on the remote side: %s", conflict_id, type(error).__name__)
        return "the remote side could not be reached or refused the change; try again later"
    return None


def _back() -> ResponseReturnValue:
    return redirect(url_for("admin.conflicts"))


@requires("admin")
def conflict_resolve(conflict_id: str) -> ResponseReturnValue:
    form = ResolveForm()
    if not form.validate():
        messages = [m for errors in form.errors.values() for m in errors]
        return _list_page(400, {conflict_id: messages})
    value = None
    if form.choice.data == "value":
        text = (form.value.data or "").strip()
        if not text:
            return _list_page(400, {conflict_id: ["enter the value to keep on both sides"]})
        value = _edited_value(conflict_id, text)
    try:
        resolve_conflict(ResolveConflict(conflict_id, form.choice.data or "", value), hub(), actor())
    except AbohubError as error:
        if "value" in error.fields:
            return _list_page(400, {conflict_id: list(error.fields["value"])})
        flash(f"The conflict was not resolved: {error.message}", "error")
        return _back()
    except ConnectorError as error:
        log.warning("resolving conflict %s failed on the remote side: %s", conflict_id, type(error).__name__)
        flash("The remote side could not be reached or refused the change; try again later.", "error")
        return _back()
    flash(f"{CHOICE_LABELS[form.choice.data or 'hub']}; both sides now agree.", "success")
    return _back()


@requires("admin")
def conflicts_bulk_resolve() -> ResponseReturnValue:
    form = BulkResolveForm()
    chosen = list(dict.fromkeys(request.form.getlist("conflict_id")))
    if not form.validate() or not chosen:
        flash("Select at least one conflict, then keep the hub's or take the remote values.", "error")
        return _back()
    refused = {conflict_id: _resolve(conflict_id, form.choice.data or "", None) for conflict_id in chosen}
    failed = {conflict_id: reason for conflict_id, reason in refused.items() if reason}
    done = len(chosen) - len(failed)
    if done:
        flash(f"{CHOICE_LABELS[form.choice.data or 'hub']} for {done} conflict(s).", "success")
    for conflict_id, reason in failed.items():
        flash(f"Conflict {conflict_id} was not resolved: {reason}", "error")
    return _back()


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/conflicts", "conflicts", conflicts)
    blueprint.add_url_rule(
        "/conflicts/resolve", "conflicts_bulk_resolve", conflicts_bulk_resolve, methods=["POST"]
    )
    blueprint.add_url_rule(
        "/conflicts/<conflict_id>/resolve", "conflicts_resolve", conflict_resolve, methods=["POST"]
    )
