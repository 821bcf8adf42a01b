"""Mappings: the list, and the editor with check, preview on a real record and save (which re-pushes)."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import select

from hub.services.sync import push_changes
from hub.store.models import Event, JobRun, Link
from hub.store.models import Mapping as MappingRow
from jobs.queue import DatabaseQueue
from jobs.relay import push_job_id, relay
from tests import factories

SCRIPT = "<script>alert(1)</script>"


class FormReader(HTMLParser):
    """The fields of the page's mapping form as a browser would submit them (before a button is added)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.data: dict[str, str] = {}
        self.select: str | None = None
        self.first_option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form" and "mapping-form" in found.get("class", ""):
            self.inside = True
        if not self.inside:
            return
        if tag == "input" and found.get("name"):
            if found.get("type") == "checkbox":
                if "checked" in found:
                    self.data[found["name"]] = found.get("value") or "y"
            else:
                self.data[found["name"]] = found.get("value", "")
        elif tag == "select":
            self.select, self.first_option = found["name"], None
        elif tag == "option" and self.select:
            if self.first_option is None:
                self.first_option = found.get("value", "")
                self.data.setdefault(self.select, self.first_option)
            if "selected" in found:
                self.data[self.select] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.select = None
        if tag == "form":
            self.inside = False


def form_of(page: str) -> dict[str, str]:
    reader = FormReader()
    reader.feed(page)
    assert reader.data, "the page has no mapping form"
    return reader.data


def row_of(form: dict[str, str], remote: str) -> int:
    """The editor's row index of the field pair whose remote field is ``remote``."""
    for name, value in form.items():
        if name.startswith("entries-") and name.endswith("-remote") and value == remote:
            return int(name.split("-")[1])
    raise AssertionError(f"no row for {remote}")


def blank_row(form: dict[str, str]) -> int:
    rows = sorted({int(n.split("-")[1]) for n in form if n.startswith("entries-")})
    return next(i for i in rows if not form[f"entries-{i}-remote"] and not form[f"entries-{i}-local"])


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def linked_customer(hub, sim, connection_id, name: str = "Karen Jensen", **fields: Any):  # type: ignore[no-untyped-def]
    customer = factories.customer(hub, name, **fields)
    sync_out(hub, connection_id)
    with hub.session_factory() as session:
        remote_id = session.scalar(select(Link.remote_id).where(Link.local_id == customer.id))
    assert remote_id is not None
    return customer, remote_id


def stored(hub, connection_id: str, object_type: str = "customer") -> MappingRow:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalars(
            select(MappingRow).where(
                MappingRow.connection_id == connection_id, MappingRow.object_type == object_type
            )
        ).one()


def entry(definition: dict[str, Any], remote: str) -> dict[str, Any]:
    return next(e for e in definition["fields"] if e["remote"] == remote)


def editor(connection_id: str, object_type: str = "customer") -> str:
    return f"/admin/connections/{connection_id}/mappings/{object_type}"


def submit(admin, path: str, form: dict[str, str], action: str):  # type: ignore[no-untyped-def]
    return admin.post_raw(path, {**form, "action": action})


def test_the_list_shows_each_connection_s_mappings_with_a_readable_summary(admin, connection_id):
    page = admin.get("/admin/mappings")
    assert page.status_code == 200
    text = page.text
    assert "HubSpot" in text and "contacts" in text and "deals" in text
    assert "name ↔ firstname+lastname" in text
    assert editor(connection_id) in text and editor(connection_id, "subscription") in text


def test_the_editor_shows_the_stored_mapping_as_rows_with_pipelines_as_text(admin, connection_id):
    form = form_of(admin.get(editor(connection_id)).text)
    name = row_of(form, "firstname + lastname")
    assert form[f"entries-{name}-local"] == "name"
    assert form[f"entries-{name}-direction"] == "both"
    assert form[f"entries-{name}-to_remote"] == "trim | split_name"
    assert form[f"entries-{name}-to_local"] == "join_name"
    assert form[f"entries-{name}-policy"] == "manual"
    mrr = row_of(form, "abohub_mrr")
    assert form[f"entries-{mrr}-local"] == "mrr + currency"
    assert form[f"entries-{mrr}-policy"] == ""  # a push field: the hub always wins, no choice to make
    assert form["remote_object"] == "contacts"
    assert form["keys-0-local"] == "email" and form["keys-0-remote"] == "email"


def test_saving_a_changed_pipeline_makes_a_new_version_and_pushes_the_new_value(
    admin, hub, sim, connection_id
):
    customer, remote_id = linked_customer(hub, sim, connection_id, country="DK")
    assert sim.get("contacts", remote_id)["properties"]["country"] == "DK"
    form = form_of(admin.get(editor(connection_id)).text)
    country = row_of(form, "country")
    # Pushed only: on a two-way field the remote's "DK" would read as "dk" too, and both sides agree.
    form[f"entries-{country}-direction"] = "push"
    form[f"entries-{country}-to_remote"] = "lower"

    saved = submit(admin, editor(connection_id), form, "save")
    assert saved.status_code == 302
    page = admin.get(saved.headers["Location"]).text
    assert "Saved as version 2; 1 linked record(s) will be pushed again" in page
    assert "A dead letter of a record that goes through is settled by it." in page
    row = stored(hub, connection_id)
    assert row.version == 2
    assert entry(row.definition, "country")["to_remote"] == [{"name": "lower"}]
    with hub.session_factory() as session:
        assert session.get(JobRun, push_job_id(connection_id, "customer")) is not None
        event = session.scalars(select(Event).where(Event.type == "mapping.updated")).one()
    assert event.actor.startswith("staff:")
    assert entry(event.data["before"], "country")["to_remote"] == []

    assert push_changes(hub, connection_id, "customer").pushed == 1
    assert sim.get("contacts", remote_id)["properties"]["country"] == "dk"
    assert customer.country == "DK"


def test_check_says_what_saving_would_do_and_saves_nothing(admin, hub, sim, connection_id):
    linked_customer(hub, sim, connection_id, country="DK")
    form = form_of(admin.get(editor(connection_id)).text)
    country = row_of(form, "country")
    form.update({f"entries-{country}-direction": "push", f"entries-{country}-to_remote": "lower"})
    page = submit(admin, editor(connection_id), form, "check")
    assert page.status_code == 200
    assert "The mapping is valid" in page.text
    assert "Saving it would push 1 linked record(s) again" in page.text
    assert 'value="lower"' in page.text  # the edit is kept in the form
    assert stored(hub, connection_id).version == 1


@pytest.mark.parametrize(
    ("change", "column", "message"),
    [
        ({"policy": ""}, "policy", "required for a two-way field"),
        ({"to_remote": "trimm"}, "to_remote", "unknown transform &#39;trimm&#39;"),
        ({"to_remote": "trim |"}, "to_remote", "write the steps like"),
        ({"local": "nmae"}, "local", "customer has no field &#39;nmae&#39;"),
        ({"direction": ""}, "direction", "Missing data for required field."),
    ],
)
def test_a_mistake_is_shown_next_to_its_row_s_input_and_nothing_is_saved(
    admin, hub, connection_id, change, column, message
):
    form = form_of(admin.get(editor(connection_id)).text)
    row = row_of(form, "firstname + lastname")
    form.update({f"entries-{row}-{key}": value for key, value in change.items()})
    page = submit(admin, editor(connection_id), form, "save")
    assert page.status_code == 400
    described = f'aria-describedby="entries-{row}-{column}-errors"'
    assert described in page.text, page.text
    errors = page.text.split(f'id="entries-{row}-{column}-errors">', 1)[1].split("</ul>", 1)[0]
    assert message in errors
    assert stored(hub, connection_id).version == 1


def test_a_field_pair_can_be_added_and_one_removed(admin, hub, connection_id):
    form = form_of(admin.get(editor(connection_id)).text)
    vat = row_of(form, "abohub_vat_number")
    form[f"entries-{vat}-remove"] = "y"
    new = blank_row(form)
    form.update(
        {
            f"entries-{new}-local": "locale",
            f"entries-{new}-remote": "hs_language",
            f"entries-{new}-direction": "push",
            f"entries-{new}-to_remote": "lower",
        }
    )
    assert submit(admin, editor(connection_id), form, "save").status_code == 302
    definition = stored(hub, connection_id).definition
    remotes = [e["remote"] for e in definition["fields"]]
    assert "abohub_vat_number" not in remotes
    assert entry(definition, "hs_language") == {
        "local": "locale",
        "remote": "hs_language",
        "direction": "push",
        "to_remote": [{"name": "lower"}],
        "policy": "hub_wins",
    }


def test_preview_shows_what_the_edit_would_send_against_the_remote_now_and_writes_nothing(
    admin, hub, sim, connection_id
):
    customer, remote_id = linked_customer(hub, sim, connection_id, country="DK")
    factories.customer(hub, "Ny Kunde", email="ny@example.dk")  # newer, but not in HubSpot yet
    writes = sim.writes()
    form = form_of(admin.get(editor(connection_id)).text)
    assert form["local_id"] == customer.id  # a linked record is chosen already: Preview works at once
    country = row_of(form, "country")
    form.update({f"entries-{country}-direction": "push", f"entries-{country}-to_remote": "lower"})
    page = submit(admin, editor(connection_id), form, "preview")
    assert page.status_code == 200
    text = page.text
    assert "Preview on Karen Jensen" in text and f"Linked to {remote_id}" in text
    country_row = text.split("<code>country</code>", 1)[1].split("</tr>", 1)[0]
    assert '<td data-label="The hub would send">dk</td>' in country_row
    assert '<td data-label="The remote has now">DK</td>' in country_row
    assert "Push 1 field(s): <code>country</code>" in text
    assert sim.writes() == writes and sim.get("contacts", remote_id)["properties"]["country"] == "DK"
    assert stored(hub, connection_id).version == 1


def test_preview_needs_a_record(admin, connection_id):
    form = form_of(admin.get(editor(connection_id)).text)
    page = submit(admin, editor(connection_id), form, "preview")
    assert form["local_id"] == ""  # no customers: nothing to choose
    assert page.status_code == 400
    assert "choose a record to preview the mapping on" in page.text  # by the record's select
    assert "choose a record to preview on, under Record to preview" in page.text  # and at the top


def test_preview_choices_are_escaped(admin, hub, connection_id):
    factories.customer(hub, SCRIPT, email="x@example.dk")
    page = admin.get(editor(connection_id)).text
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_viewer_reads_the_mapping_but_cannot_change_it(viewer, admin, hub, connection_id):
    page = viewer.get(editor(connection_id))
    assert page.status_code == 200
    assert "firstname + lastname" in page.text and "trim | split_name" in page.text
    assert 'class="mapping-form"' not in page.text and "Save" not in page.text
    form = form_of(admin.get(editor(connection_id)).text)
    del form["csrf_token"]  # the viewer's own token is sent
    refused = viewer.post(editor(connection_id), {**form, "action": "save"}, token_from=editor(connection_id))
    assert refused.status_code == 403
    assert stored(hub, connection_id).version == 1


def test_unknown_connections_and_object_types_are_not_found(admin, connection_id):
    assert admin.get(editor("con_nope")).status_code == 404
    assert admin.get(editor(connection_id, "invoice")).status_code == 404


def test_a_type_without_a_mapping_starts_from_the_connector_s_suggestion(admin, hub, connection_id):
    with hub.session_factory() as session, session.begin():
        session.delete(session.get(MappingRow, stored(hub, connection_id, "subscription").id))
    listing = admin.get("/admin/mappings").text
    assert "not synced: no mapping yet" in listing
    page = admin.get(editor(connection_id, "subscription")).text
    assert "Not saved yet" in page
    form = form_of(page)
    assert form["remote_object"] == "deals"
    assert submit(admin, editor(connection_id, "subscription"), form, "save").status_code == 302
    assert stored(hub, connection_id, "subscription").version == 1
