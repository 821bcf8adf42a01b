"""The sync log: the job runs of the embedded queue, and the dead letters with their replay.

Replaying calls the same service as the REST API (``hub.api.dead_letters``): the record is marked dirty
again, then the push job of its connection and object type is queued. The admin is an edge like the API,
so it may reach the job queue.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy import and_, select
from wtforms import BooleanField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional, Regexp

from hub.admin.auth import requires
from hub.admin.context import actor, hub
from hub.admin.forms import ActionForm
from hub.admin.tables import Sorting, paged
from hub.admin.views.conflicts import connection_choices
from hub.domain.errors import AbohubError
from hub.services.dead_letters import replay_dead_letter
from hub.store.models import Connection, Customer, DeadLetter, JobRun
from jobs.queue import DONE, FAILED, QUEUED, RUNNING
from jobs.relay import queue_push
from jobs.runtime import make_queue
from jobs.schedule import PERIODIC_PREFIX

JOB_SORTING = Sorting(
    {"updated": JobRun.updated_at, "run_at": JobRun.run_at, "attempts": JobRun.attempts},
    default="updated",
    default_descending=True,
)
LETTER_SORTING = Sorting(
    {"created": DeadLetter.created_at, "attempts": DeadLetter.attempts},
    default="created",
    default_descending=True,
)


class JobFilterForm(FlaskForm):
    class Meta:
        csrf = False

    connection_id = SelectField("Connection", default="")
    object_type = StringField(
        "Object type",
        validators=[Optional(), Length(max=32), Regexp(r"^[a-z_]+$", message="use a type such as customer")],
    )
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any"), *(SelectChoice(s, s) for s in (QUEUED, RUNNING, DONE, FAILED))],
        default="",
    )
    periodic = BooleanField("Show periodic runs that went fine")


class LetterFilterForm(FlaskForm):
    class Meta:
        csrf = False

    connection_id = SelectField("Connection", default="")
    state = SelectField(
        "State",
        choices=[SelectChoice("open", "Open"), SelectChoice("resolved", "Resolved"), SelectChoice("", "Any")],
        default="open",
    )


def job_runs() -> ResponseReturnValue:
    form = JobFilterForm(formdata=request.args or None)
    form.connection_id.choices = connection_choices()
    valid = not request.args or form.validate()
    filters = {
        "connection_id": (form.connection_id.data or "") if valid else "",
        "object_type": (form.object_type.data or "").strip() if valid else "",
        "status": (form.status.data or "") if valid else "",
        "periodic": "y" if valid and form.periodic.data else "",
    }
    query = select(JobRun)
    if not filters["periodic"]:
        # The outbox relay alone runs every 5 s: its routine runs would bury the sync work (a periodic run
        # that failed, waits or runs still shows).
        query = query.where(~(JobRun.id.startswith(PERIODIC_PREFIX) & (JobRun.status == DONE)))
    if filters["connection_id"]:
        query = query.where(JobRun.args["connection_id"].as_string() == filters["connection_id"])
    if filters["object_type"]:
        query = query.where(JobRun.args["object_type"].as_string() == filters["object_type"])
    if filters["status"]:
        query = query.where(JobRun.status == filters["status"])
    with hub().session_factory() as session:
        table = paged(session, query, JOB_SORTING, JobRun.id, request.args, filters)
    return render_template("admin/sync_jobs.html", form=form, table=table), 200 if valid else 400


def dead_letters() -> ResponseReturnValue:
    form = LetterFilterForm(formdata=request.args or None)
    form.connection_id.choices = connection_choices()
    valid = not request.args or form.validate()
    connection_id = (form.connection_id.data or "") if valid else ""
    state = (form.state.data or "") if valid else "open"
    query = (
        select(DeadLetter, Connection.name, Customer.name)
        .join(Connection, Connection.id == DeadLetter.connection_id)
        .outerjoin(Customer, and_(DeadLetter.object_type == "customer", Customer.id == DeadLetter.local_id))
    )
    if connection_id:
        query = query.where(DeadLetter.connection_id == connection_id)
    if state:
        unresolved = DeadLetter.resolved_at.is_(None)
        query = query.where(unresolved if state == "open" else ~unresolved)
    filters = {"connection_id": connection_id, "state": state}
    with hub().session_factory() as session:
        table = paged(session, query, LETTER_SORTING, DeadLetter.id, request.args, filters)
    page = render_template(
        "admin/sync_dead_letters.html", form=form, table=table, action=ActionForm(formdata=None)
    )
    return page, 200 if valid else 400


def _replay(dead_letter_ids: list[str]) -> ResponseReturnValue:
    """Mark each letter's record dirty again, then queue one push per connection and object type."""
    pushes: set[tuple[str, str]] = set()
    refused: list[str] = []
    for dead_letter_id in dead_letter_ids:
        try:
            letter = replay_dead_letter(dead_letter_id, hub(), actor())
        except AbohubError as error:
            refused.append(f"Dead letter {dead_letter_id} was not replayed: {error.message}")
            continue
        pushes.add((letter.connection_id, letter.object_type))
    if pushes:
        queue = make_queue(hub())
        for connection_id, object_type in sorted(pushes):
            queue_push(queue, connection_id, object_type)
    replayed = len(dead_letter_ids) - len(refused)
    if replayed:
        flash(f"{replayed} record(s) will be sent again with the next push.", "success")
    for message in refused:
        flash(message, "error")
    return redirect(url_for("admin.sync_dead_letters"))


@requires("admin")
def replay_one(dead_letter_id: str) -> ResponseReturnValue:
    return _replay([dead_letter_id])


@requires("admin")
def replay_selected() -> ResponseReturnValue:
    chosen = list(dict.fromkeys(request.form.getlist("dead_letter_id")))
    if not chosen:
        flash("Select at least one dead letter to replay.", "error")
        return redirect(url_for("admin.sync_dead_letters"))
    return _replay(chosen)


def init_app(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/sync", "sync", job_runs)
    blueprint.add_url_rule("/sync/dead-letters", "sync_dead_letters", dead_letters)
    blueprint.add_url_rule(
        "/sync/dead-letters/replay", "sync_replay_selected", replay_selected, methods=["POST"]
    )
    blueprint.add_url_rule(
        "/sync/dead-letters/<dead_letter_id>/replay", "sync_replay", replay_one, methods=["POST"]
    )
