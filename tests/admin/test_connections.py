"""Connections: the list with health and webhook URL; add and edit from the connector's schema; test, enable,
disable and delete. Secrets are stored encrypted and never reach a page."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from hub.services.connections import CreateConnection, UpdateConnection, create_connection, update_connection
from hub.services.crypto import box_for
from hub.services.sync import push_changes
from hub.store.models import Connection, Event, Mapping
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests import factories

SCRIPT = "<script>alert(1)</script>"
TOKEN = "pat-na1-form-typed-token"
SECRET = "app-secret-typed-in-the-form"
KEEP_HINT = "leave empty to keep the stored value; type a new one to replace it"


# --- helpers ----------------------------------------------------------------------------------------------


def followed(browser, path: str, data: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    response = browser.post(path, data)
    assert response.status_code == 302, response.text
    return browser.get(response.headers["Location"])


def connections(hub) -> list[Connection]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return list(session.scalars(select(Connection).order_by(Connection.name)))


def stored_config(hub, connection_id: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return box_for(hub.settings).decrypt(session.get(Connection, connection_id).config_encrypted)


def events(hub, type_: str) -> list[Event]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return list(session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)))


def input_tag(page: str, key: str) -> str:
    """The whole ``<input>`` (or ``<select>``) tag named ``key``."""
    found = re.search(rf'<(?:input|select)[^>]*\bname="{re.escape(key)}"[^>]*>', page)
    assert found, f"no input {key}"
    return found.group(0)


def field_errors(page: str, key: str) -> list[str]:
    """The messages shown right under the input ``key`` (the list its ``aria-describedby`` names)."""
    assert 'aria-invalid="true"' in input_tag(page, key)
    found = re.search(rf'<ul class="field-errors" id="{re.escape(key)}-errors">(.*?)</ul>', page, re.S)
    assert found, f"no errors under {key}"
    return [html.unescape(text) for text in re.findall(r"<li>(.*?)</li>", found.group(1))]


def row_of(page: str, name: str) -> str:
    """The list's table row of the connection called ``name``."""
    [row] = [chunk for chunk in page.split("<tr>") if f">{name}</a>" in chunk]
    return row


def cell(row: str, label: str) -> str:
    found = re.search(rf'<td data-label="{label}"[^>]*>(.*?)</td>', row, re.S)
    assert found, label
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def hubspot_form(sim, **changes: object) -> dict[str, object]:  # type: ignore[no-untyped-def]
    data: dict[str, object] = {
        "name": "HubSpot production",
        "config_base_url": sim.base_url if sim else "http://hubspot.test",
        "config_access_token": sim.token if sim else TOKEN,
        "config_client_secret": sim.client_secret if sim else SECRET,
        "config_requests_per_ten_seconds": "150",
        "config_searches_per_second": "4",
    }
    data.update(changes)
    return data


def hubspot(hub, sim, name: str = "HubSpot", **config: object) -> str:  # type: ignore[no-untyped-def]
    base = {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret}
    created = create_connection(CreateConnection("hubspot", name, {**base, **config}), hub.uow("tests"))
    return created.id


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


# --- the list ---------------------------------------------------------------------------------------------


def test_the_list_shows_each_connection_with_its_health_and_webhook_url(admin, hub, sim, connection_id):
    factories.customer(hub, "Anna Berg")
    factories.customer(hub, "Bo Dal", email="bo at example")  # HubSpot refuses it: a dead letter
    report = sync_out(hub, connection_id)
    assert report.pushed == 1 and report.dead_lettered == 1
    factories.customer(hub, "Ida Holm")
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))  # queued, not pushed
    with hub.session_factory() as session, session.begin():
        session.execute(
            update(Connection).where(Connection.id == connection_id).values(last_error="HubSpot answered 503")
        )
    quiet = hubspot(hub, sim, "Quiet CRM")
    update_connection(UpdateConnection(quiet, enabled=False), hub.uow("tests"))

    page = admin.get("/admin/connections")
    assert page.status_code == 200
    busy = row_of(page.text, "HubSpot")
    assert f'href="/admin/connections/{connection_id}"' in busy
    assert cell(busy, "Connection") == "HubSpot hubspot"
    assert cell(busy, "Status") == "enabled needs attention"
    assert cell(busy, "Linked") == "1"
    assert cell(busy, "Backlog") == "1"
    assert cell(busy, "Dead letters") == "1"
    assert cell(busy, "Open conflicts") == "0"
    assert cell(busy, "Last push") == "15.01.2026 09.00"
    assert cell(busy, "Last error") == "HubSpot answered 503"
    assert cell(busy, "Webhook URL") == f"http://localhost/webhooks/{connection_id}"

    calm = row_of(page.text, "Quiet CRM")
    assert cell(calm, "Status") == "disabled"
    assert cell(calm, "Linked") == "0" and cell(calm, "Last push") == "never"
    assert cell(calm, "Webhook URL") == f"http://localhost/webhooks/{quiet}"

    assert "Add connection" in page.text and "crm" in page.text
    assert 'href="/admin/connections/new?connector=hubspot"' in page.text
    assert sim.token not in page.text and sim.client_secret not in page.text
    assert 'aria-current="page">Connections</a>' in page.text


def test_the_detail_page_shows_config_health_webhook_and_mapped_object_types(admin, hub, sim, connection_id):
    factories.customer(hub, "Anna Berg")
    sync_out(hub, connection_id)
    page = admin.get(f"/admin/connections/{connection_id}").text
    assert f"http://localhost/webhooks/{connection_id}" in page
    assert "<dt>Linked records</dt><dd>1</dd>" in page
    assert f"<dt>Base URL</dt><dd>{sim.base_url}</dd>" in page
    assert "<dt>Access token</dt><dd>***</dd>" in page and "<dt>Client secret</dt><dd>***</dd>" in page
    assert "<dt>Refresh token</dt><dd>not set</dd>" in page
    types = page[page.index('id="object-types"') :].split("</section>")[0]
    for object_type in ("customer", "subscription"):  # each opens its mapping
        assert f'href="/admin/connections/{connection_id}/mappings/{object_type}">{object_type}</a>' in types
    assert "connection.created" in page  # its recent changes
    assert sim.token not in page and sim.client_secret not in page


def test_unknown_connections_and_connectors_are_friendly_errors(admin):
    missing = admin.get("/admin/connections/con_nobody")
    assert missing.status_code == 404 and "There is nothing here." in missing.text
    assert admin.get("/admin/connections/con_nobody/edit").status_code == 404
    assert admin.post("/admin/connections/con_nobody/test").status_code == 404
    unknown = admin.get("/admin/connections/new?connector=nosuch")
    assert unknown.status_code == 400 and "no connector named" in html.unescape(unknown.text)


# --- adding -----------------------------------------------------------------------------------------------


def test_the_add_form_is_built_from_the_connectors_schema(admin):
    chooser = admin.get("/admin/connections/new")
    assert chooser.status_code == 200 and 'href="/admin/connections/new?connector=hubspot"' in chooser.text

    page = admin.get("/admin/connections/new?connector=hubspot").text
    base_url = input_tag(page, "config_base_url")
    assert 'type="url"' in base_url and 'value="https://api.hubapi.com"' in base_url  # the default
    for secret in ("config_access_token", "config_client_secret", "config_refresh_token"):
        tag = input_tag(page, secret)
        assert 'type="password"' in tag and 'value=""' in tag
    assert "required" in input_tag(page, "config_client_secret")
    assert "required" not in input_tag(page, "config_client_id")
    assert "Client secret (required)</label>" in page
    assert "signs webhooks, refreshes tokens" in html.unescape(page)  # the field's description
    rate = input_tag(page, "config_requests_per_ten_seconds")
    assert all(part in rate for part in ('type="number"', 'value="190"', 'min="1"', 'max="10000"'))
    assert 'type="text"' in input_tag(page, "config_client_id")
    assert 'type="text"' in input_tag(page, "name")


def test_adding_a_hubspot_connection_stores_it_encrypted_and_it_works(admin, admin_user, hub, sim):
    response = admin.post(
        "/admin/connections/new?connector=hubspot",
        hubspot_form(sim),
        token_from="/admin/connections/new?connector=hubspot",
    )
    assert response.status_code == 302
    [connection] = connections(hub)
    assert response.headers["Location"] == f"/admin/connections/{connection.id}"
    detail = admin.get(response.headers["Location"]).text
    assert "HubSpot production is added." in detail

    assert (
        connection.connector == "hubspot" and connection.name == "HubSpot production" and connection.enabled
    )
    for secret in (sim.token, sim.client_secret):
        assert secret not in connection.config_encrypted
    config = stored_config(hub, connection.id)
    assert config["access_token"] == sim.token and config["client_secret"] == sim.client_secret
    assert config["base_url"] == sim.base_url
    assert config["requests_per_ten_seconds"] == 150 and config["searches_per_second"] == 4
    assert config["refresh_token"] is None and config["client_id"] is None  # left empty: the default
    with hub.session_factory() as session:
        mapped = session.scalars(select(Mapping.object_type).where(Mapping.connection_id == connection.id))
        assert sorted(mapped) == ["customer", "subscription"]
    [created] = events(hub, "connection.created")
    assert created.actor == f"staff:{admin_user.id}" and created.data["config"]["access_token"] == "***"

    tested = followed(admin, f"/admin/connections/{connection.id}/test")
    assert re.search(r"HubSpot production works \(\d+ ms\)\.", tested.text)

    pages = [
        detail,
        tested.text,
        admin.get("/admin/connections").text,
        admin.get(f"/admin/connections/{connection.id}/edit").text,
    ]
    for page in pages:
        assert sim.token not in page and sim.client_secret not in page


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"config_client_secret": ""}, "config_client_secret", "This field is required."),
        ({"name": "  "}, "name", "This field is required."),
        ({"config_base_url": "not a web address"}, "config_base_url", "Not a valid URL."),
        (
            {"config_access_token": ""},
            "config_access_token",
            "give a private-app access_token or an OAuth refresh_token",
        ),
        (
            {"config_requests_per_ten_seconds": "0"},
            "config_requests_per_ten_seconds",
            "Number must be between 1 and 10000.",
        ),
        ({"config_searches_per_second": "many"}, "config_searches_per_second", "Not a valid integer value."),
    ],
)
def test_a_refused_field_is_shown_next_to_it_and_nothing_is_stored(admin, hub, changes, key, message):
    response = admin.post(
        "/admin/connections/new?connector=hubspot",
        hubspot_form(None, **changes),
        token_from="/admin/connections/new?connector=hubspot",
    )
    assert response.status_code == 400
    assert field_errors(response.text, key) == [message]
    assert connections(hub) == []
    assert TOKEN not in response.text and SECRET not in response.text  # a typed secret is not sent back
    if key != "config_base_url":
        assert 'value="http://hubspot.test"' in input_tag(response.text, "config_base_url")  # kept as typed


def test_adding_without_the_csrf_token_is_refused(admin, hub):
    response = admin.post_raw("/admin/connections/new?connector=hubspot", hubspot_form(None))
    assert response.status_code == 400 and connections(hub) == []


# --- editing and testing ----------------------------------------------------------------------------------


def test_editing_keeps_an_empty_secret_and_replaces_a_typed_one(admin, admin_user, hub, sim, connection_id):
    path = f"/admin/connections/{connection_id}/edit"
    page = admin.get(path).text
    assert 'value="HubSpot"' in input_tag(page, "name")
    assert f'value="{sim.base_url}"' in input_tag(page, "config_base_url")
    assert 'value="190"' in input_tag(page, "config_requests_per_ten_seconds")
    for secret in ("config_access_token", "config_client_secret"):
        tag = input_tag(page, secret)
        assert 'type="password"' in tag and 'value=""' in tag and "required" not in tag
    assert page.lower().count(KEEP_HINT) == 2  # the access token and the client secret are stored
    assert sim.token not in page and sim.client_secret not in page

    kept = hubspot_form(sim, name="HubSpot EU", config_access_token="", config_client_secret="")
    saved = admin.post(path, kept, token_from=path)
    assert saved.status_code == 302 and saved.headers["Location"] == f"/admin/connections/{connection_id}"
    config = stored_config(hub, connection_id)
    assert config["access_token"] == sim.token and config["client_secret"] == sim.client_secret
    assert config["requests_per_ten_seconds"] == 150
    assert connections(hub)[0].name == "HubSpot EU"
    assert "HubSpot EU works (" in followed(admin, f"/admin/connections/{connection_id}/test").text

    replaced = admin.post(path, {**kept, "config_access_token": "pat-na1-typed-anew"}, token_from=path)
    assert replaced.status_code == 302
    assert stored_config(hub, connection_id)["access_token"] == "pat-na1-typed-anew"
    assert stored_config(hub, connection_id)["client_secret"] == sim.client_secret
    failed = followed(admin, f"/admin/connections/{connection_id}/test").text
    assert "HubSpot EU does not work: auth" in failed and "pat-na1-typed-anew" not in failed

    admin.post(path, {**kept, "config_access_token": sim.token}, token_from=path)
    assert "HubSpot EU works (" in followed(admin, f"/admin/connections/{connection_id}/test").text
    updates = events(hub, "connection.updated")
    assert len(updates) == 3 and {event.actor for event in updates} == {f"staff:{admin_user.id}"}
    assert all(sim.token not in str(event.data) for event in updates)


def test_a_refused_edit_is_shown_next_to_the_field_and_changes_nothing(admin, hub, sim, connection_id):
    path = f"/admin/connections/{connection_id}/edit"
    bad = hubspot_form(sim, config_base_url="nowhere", config_access_token="pat-na1-never-stored")
    response = admin.post(path, bad, token_from=path)
    assert response.status_code == 400
    assert field_errors(response.text, "config_base_url") == ["Not a valid URL."]
    assert "the connection&#39;s configuration is not valid" in response.text  # the summary on top
    assert "pat-na1-never-stored" not in response.text
    config = stored_config(hub, connection_id)
    assert config["base_url"] == sim.base_url and config["access_token"] == sim.token
    assert events(hub, "connection.updated") == []


def test_the_test_action_reports_an_auth_failure_without_showing_the_token(admin, hub, sim):
    wrong = "pat-na1-not-a-token-hubspot-knows"
    connection_id = hubspot(hub, sim, "Wrong token", access_token=wrong)
    page = followed(admin, f"/admin/connections/{connection_id}/test").text
    flashes = re.findall(r'<li class="flash flash-error">(.*?)</li>', page, re.S)
    assert len(flashes) == 1 and flashes[0].startswith("Wrong token does not work: auth")
    assert "401" in flashes[0]
    assert wrong not in page and "works (" not in page


# --- enable, disable, delete ------------------------------------------------------------------------------


def test_disable_enable_and_delete(admin, admin_user, hub, sim, connection_id):
    detail = f"/admin/connections/{connection_id}"
    page = admin.get(detail).text
    assert f"{detail}/disable" in page and f"{detail}/delete" not in page
    assert "disable it first" in page

    refused = followed(admin, f"{detail}/delete", {"confirm": "y"})
    assert "HubSpot was not deleted: disable the connection before deleting it." in refused.text
    assert len(connections(hub)) == 1

    disabled = followed(admin, f"{detail}/disable")
    assert "HubSpot is disabled" in disabled.text
    assert not connections(hub)[0].enabled
    assert f"{detail}/enable" in disabled.text and f"{detail}/delete" in disabled.text
    assert '<span class="status status-off">disabled</span>' in admin.get("/admin/connections").text

    unconfirmed = admin.post(f"{detail}/delete", {})
    assert unconfirmed.status_code == 400
    assert field_errors(unconfirmed.text, "confirm") == ["tick the box to confirm the deletion"]
    assert len(connections(hub)) == 1

    enabled = followed(admin, f"{detail}/enable")
    assert "HubSpot is enabled" in enabled.text and connections(hub)[0].enabled
    followed(admin, f"{detail}/disable")

    deleted = admin.post(f"{detail}/delete", {"confirm": "y"})
    assert deleted.status_code == 302 and deleted.headers["Location"] == "/admin/connections"
    listing = admin.get("/admin/connections").text
    assert "HubSpot is deleted" in listing and "No connections yet." in listing
    assert connections(hub) == []
    with hub.session_factory() as session:
        assert session.scalars(select(Mapping).where(Mapping.connection_id == connection_id)).all() == []
    assert admin.get(detail).status_code == 404
    switches = events(hub, "connection.updated") + events(hub, "connection.deleted")
    assert len(switches) == 4 and {event.actor for event in switches} == {f"staff:{admin_user.id}"}


# --- roles and escaping -----------------------------------------------------------------------------------


def test_a_viewer_sees_the_pages_without_buttons_and_cannot_change_anything(viewer, hub, sim, connection_id):
    detail = f"/admin/connections/{connection_id}"
    for path in ("/admin/connections", detail, "/admin/connections/new?connector=hubspot", f"{detail}/edit"):
        page = viewer.get(path)
        assert page.status_code == 200, path
        for action in ("/test", "/enable", "/disable", "/delete", "/edit", "?connector=", 'name="config_'):
            assert action not in page.text, (path, action)
        assert sim.token not in page.text
    assert "HubSpot" in viewer.get("/admin/connections").text
    assert "Only an admin" in viewer.get("/admin/connections/new?connector=hubspot").text

    posts = {
        "/admin/connections/new?connector=hubspot": hubspot_form(sim),
        f"{detail}/edit": hubspot_form(sim, name="Renamed"),
        f"{detail}/test": {},
        f"{detail}/disable": {},
        f"{detail}/enable": {},
        f"{detail}/delete": {"confirm": "y"},
    }
    for path, data in posts.items():
        response = viewer.post(path, data)
        assert response.status_code == 403, path
        assert "Your role does not allow this" in response.text
    [connection] = connections(hub)
    assert connection.name == "HubSpot" and connection.enabled
    assert events(hub, "connection.updated") == []


def test_a_connection_named_like_a_script_renders_as_text(admin, hub, sim):
    connection_id = hubspot(hub, sim, SCRIPT)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    pages = [
        admin.get("/admin/connections").text,
        admin.get(f"/admin/connections/{connection_id}").text,
        admin.get(f"/admin/connections/{connection_id}/edit").text,
        followed(admin, f"/admin/connections/{connection_id}/test").text,  # the name in the flash
    ]
    for page in pages:
        assert SCRIPT not in page and escaped in page
        assert "<script" not in page and "style=" not in page
