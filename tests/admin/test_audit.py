"""The audit log: who changed what, when; filtered, paged and sorted; one event with its before and after."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from hub.services import customers
from hub.services.connections import CreateConnection, UpdateConnection, create_connection, update_connection
from hub.store.models import Event
from tests import factories
from tests.conftest import START

SCRIPT = "<script>alert(1)</script>"
WHAT = re.compile(r'<a href="/admin/audit/(\d+)">([^<]+)</a>')


def types_in(html: str) -> list[str]:
    """The event types of the log's rows, in order."""
    return [kind for _, kind in WHAT.findall(html)]


def ids_in(html: str) -> list[int]:
    return [int(event_id) for event_id, _ in WHAT.findall(html)]


def row_of(html: str, kind: str) -> str:
    """The one table row of the event of type ``kind``."""
    [row] = [row for row in html.split("<tr>") if f">{kind}</a>" in row]
    return row.split("</tr>")[0]


def shown(admin, query: str = "", status: int = 200) -> str:  # type: ignore[no-untyped-def]
    page = admin.get(f"/admin/audit?{query}")
    assert page.status_code == status, page.text
    return page.text


def as_staff(hub, user) -> object:  # type: ignore[no-untyped-def]
    return hub.uow(f"staff:{user.id}")


def add_event(hub, kind: str = "note.added", **fields: object) -> int:  # type: ignore[no-untyped-def]
    values = {
        "type": kind,
        "aggregate_type": "note",
        "aggregate_id": "not_1",
        "customer_id": None,
        "actor": "system",
        "occurred_at": START,
        "recorded_at": START,
        "data": {},
        **fields,
    }
    with hub.session_factory() as session, session.begin():
        event = Event(**values)
        session.add(event)
        session.flush()
        return event.id


@pytest.fixture
def business(hub, admin_user, clock):  # type: ignore[no-untyped-def]
    """Anna, added by the admin ada; Bo, added by the demo loader with a subscription; three days
    later the system moves Anna to Aarhus."""
    anna = customers.create_customer(
        customers.CreateCustomer(name="Anna Andersen", email="anna@example.dk"), as_staff(hub, admin_user)
    )
    bo = customers.create_customer(
        customers.CreateCustomer(name="Bo Berg", email="bo@example.dk"), hub.uow("cli:demo")
    )
    subscription_id = factories.subscribe(hub, bo.id, factories.plan(hub).id)
    clock.set(START + timedelta(days=3))
    customers.update_customer(customers.UpdateCustomer(anna.id, {"city": "Aarhus"}), hub.uow())
    clock.set(START)
    return anna, bo, subscription_id


def test_an_admins_pause_shows_their_username_and_links_to_the_subscription_and_customer(
    admin, hub, admin_user
):
    customer = factories.customer(hub, "Dora Dahl")
    subscription_id = factories.subscribe(hub, customer.id, factories.plan(hub, name="Gold").id)
    paused = admin.post(
        f"/admin/subscriptions/{subscription_id}/pause", token_from=f"/admin/subscriptions/{subscription_id}"
    )
    assert paused.status_code == 302

    page = shown(admin)
    assert types_in(page)[0] == "subscription.paused"  # newest first
    row = row_of(page, "subscription.paused")
    assert '<td data-label="Who">ada</td>' in row and f"staff:{admin_user.id}" not in row
    assert f'href="/admin/subscriptions/{subscription_id}"' in row
    assert f'<a href="/admin/customers/{customer.id}">Dora Dahl</a>' in row
    assert '<td data-label="Who">system</td>' in row_of(page, "subscription.created")
    assert "/admin/" not in row_of(page, "plan.created").split('data-label="Record"')[1]  # no page: text


def test_a_customer_created_through_the_services_as_staff_shows_the_username(admin, hub, admin_user):
    customers.create_customer(
        customers.CreateCustomer(name="Eva Lund", email="eva@example.dk"), as_staff(hub, admin_user)
    )
    row = row_of(shown(admin), "customer.created")
    assert '<td data-label="Who">ada</td>' in row and "Eva Lund" in row


def test_filters_by_who_what_record_customer_and_date_narrow_the_rows(admin, hub, admin_user, business):
    anna, bo, subscription_id = business
    everything = shown(admin)
    assert {"customer.created", "customer.updated", "subscription.created", "staff_user.logged_in"} <= set(
        types_in(everything)
    )

    by_ada = shown(admin, "actor=Ada")  # signing in is recorded as hers too
    assert sorted(types_in(by_ada)) == ["customer.created", "staff_user.logged_in"]
    assert "Anna Andersen" in by_ada and "Bo Berg" not in by_ada
    assert types_in(shown(admin, f"actor=staff:{admin_user.id}&type=customer.")) == ["customer.created"]
    by_demo = shown(admin, "actor=cli:demo")
    assert (
        types_in(by_demo) == ["customer.created"] and "Bo Berg" in by_demo and "Anna Andersen" not in by_demo
    )

    assert sorted(types_in(shown(admin, "type=customer."))) == [
        "customer.created",
        "customer.created",
        "customer.updated",
    ]
    assert types_in(shown(admin, "type=customer_")) == []  # the prefix is matched literally
    assert types_in(shown(admin, "type=%25")) == []

    subscription_rows = shown(admin, "record_type=subscription")
    assert set(types_in(subscription_rows)) == {"subscription.created"}
    assert subscription_id in subscription_rows
    assert set(types_in(shown(admin, f"record_id={anna.id}"))) == {"customer.created", "customer.updated"}

    of_bo = shown(admin, f"customer={bo.id}")
    assert set(types_in(of_bo)) == {"customer.created", "subscription.created", "invoice.issued"}
    assert "Anna Andersen" not in of_bo

    later = START.date() + timedelta(days=3)
    assert types_in(shown(admin, f"from_date={later.isoformat()}")) == ["customer.updated"]
    first_day = shown(admin, f"to_date={START.date().isoformat()}&type=customer.")
    assert types_in(first_day) == ["customer.created", "customer.created"]
    one_day = f"from_date={later.isoformat()}&to_date={later.isoformat()}"
    assert types_in(shown(admin, one_day)) == ["customer.updated"]  # both ends are included


def test_invalid_filters_are_a_400_with_the_message_by_the_field_and_the_whole_log(admin, business):
    whole = types_in(shown(admin))
    backwards = shown(admin, "from_date=2026-01-20&to_date=2026-01-10&type=customer.", status=400)
    assert 'id="to_date-errors"' in backwards and "must not be before the from date" in backwards
    assert types_in(backwards) == whole
    nonsense = shown(admin, "from_date=2026-13-45", status=400)
    assert 'id="from_date-errors"' in nonsense and types_in(nonsense) == whole
    nobody = shown(admin, "actor=zelda", status=400)
    assert "no staff user has this username" in nobody and types_in(nobody) == whole
    assert 'id="record_type-errors"' in shown(admin, "record_type=bogus", status=400)


def test_the_log_pages_past_25_rows_and_sorts_by_type(admin, hub):
    for number in range(27):
        factories.customer(hub, f"Person {number}")
    first = shown(admin, "type=customer.")
    assert len(ids_in(first)) == 25 and "27 events · page 1 of 2" in first
    assert re.search(
        r'href="/admin/audit\?[^"]*type=customer\.[^"]*page=2[^"]*" rel="next"', first.replace("&amp;", "&")
    )
    second = shown(admin, "type=customer.&page=2")
    assert len(ids_in(second)) == 2 and not set(ids_in(first)) & set(ids_in(second))
    assert ids_in(first) == sorted(ids_in(first), reverse=True)  # same moment: the newest id first
    assert max(ids_in(second)) < min(ids_in(first))

    by_type = shown(admin, "sort=type&dir=asc&limit=100")
    assert types_in(by_type) == sorted(types_in(by_type)) and 'aria-sort="ascending"' in by_type
    assert shown(admin, "sort=actor;drop&dir=sideways").count("<tr>") > 1  # an unknown sort falls back


def test_the_detail_shows_before_and_after_with_the_changed_field_marked(admin, hub, admin_user):
    config = {"base_url": "http://127.0.0.1:9", "access_token": "t0ken-abc", "client_secret": "s3cret-xyz"}
    connection = create_connection(CreateConnection("hubspot", "Sales HubSpot", config), hub.uow())
    update_connection(UpdateConnection(connection.id, name="Sales"), as_staff(hub, admin_user))
    row = row_of(shown(admin), "connection.updated")
    assert f'href="/admin/connections/{connection.id}"' in row
    [event_id] = WHAT.findall(row)

    page = admin.get(f"/admin/audit/{event_id[0]}")
    assert page.status_code == 200
    html = page.text
    assert "Before and after" in html and "ada" in html
    name = re.search(r'<tr class="changed">\s*<td data-label="Field">name\b.*?</tr>', html, re.S)
    assert name and "Sales HubSpot" in name.group(0) and "<code>Sales</code>" in name.group(0)
    enabled = re.search(r"<tr>\s*<td data-label=\"Field\">enabled</td>.*?</tr>", html, re.S)
    assert enabled and "<code>true</code>" in enabled.group(0)  # unchanged: not marked
    created = WHAT.findall(row_of(shown(admin), "connection.created"))[0][0]
    created_page = admin.get(f"/admin/audit/{created}").text
    assert "t0ken-abc" not in created_page and "s3cret-xyz" not in created_page and "***" in created_page


def test_a_value_under_a_secret_named_key_is_masked_at_any_depth(admin, hub):
    event_id = add_event(
        hub,
        data={
            "note": "kept visible",
            "Password": "hunter2",
            "nested": {"client_SECRET": "s3cr3t", "list": [{"refresh_token": "tok-123"}], "api_key": "k-9"},
            "before": {"password_hash": "old-hash", "city": "Odense"},
            "after": {"password_hash": "new-hash", "city": "Aarhus"},
        },
    )
    html = admin.get(f"/admin/audit/{event_id}").text
    for secret in ("hunter2", "s3cr3t", "tok-123", "k-9", "old-hash", "new-hash"):
        assert secret not in html
    assert "kept visible" in html and "Odense" in html and "Aarhus" in html and "***" in html
    assert "Also recorded" in html


def test_data_without_before_and_after_is_shown_as_a_list(admin, hub):
    event_id = add_event(hub, data={"client_address": "192.0.2.10", "count": 3})
    html = admin.get(f"/admin/audit/{event_id}").text
    assert "Before and after" not in html
    assert "<dt>client_address</dt><dd><code>192.0.2.10</code></dd>" in html
    assert "<dt>count</dt><dd><code>3</code></dd>" in html


def test_an_unknown_event_is_a_404(admin):
    assert admin.get("/admin/audit/999999").status_code == 404
    assert admin.get("/admin/audit/99999999999999999999").status_code == 404
    assert admin.get("/admin/audit/nope").status_code == 404


def test_a_viewer_reads_the_log_and_an_event_and_a_stranger_is_sent_to_sign_in(viewer, browser, hub):
    event_id = add_event(hub, data={"note": "visible to viewers"})
    log = viewer.get("/admin/audit")
    assert log.status_code == 200 and "note.added" in log.text
    assert 'href="/admin/audit"' in log.text and 'aria-current="page"' in log.text
    detail = viewer.get(f"/admin/audit/{event_id}")
    assert detail.status_code == 200 and "visible to viewers" in detail.text
    for path in ("/admin/audit", f"/admin/audit/{event_id}"):
        stranger = browser.get(path)
        assert stranger.status_code == 302 and "/admin/login" in stranger.headers["Location"]


def test_the_customer_and_connection_pages_link_to_their_changes(admin, hub, business):
    anna, bo, _ = business
    customer_page = admin.get(f"/admin/customers/{bo.id}").text
    link = f'href="/admin/audit?customer={bo.id}"'
    assert link in customer_page and "All of this customer's changes" in customer_page
    followed = shown(admin, f"customer={bo.id}")
    assert set(types_in(followed)) == {"customer.created", "subscription.created", "invoice.issued"}
    assert "Bo Berg" in followed and "Anna Andersen" not in followed and anna.id not in followed

    config = {"base_url": "http://127.0.0.1:9", "access_token": "t0ken", "client_secret": "s3cret"}
    connection = create_connection(CreateConnection("hubspot", "Sales HubSpot", config), hub.uow())
    connection_page = admin.get(f"/admin/connections/{connection.id}").text
    assert f'href="/admin/audit?record_id={connection.id}"' in connection_page
    assert types_in(shown(admin, f"record_id={connection.id}")) == ["connection.created"]


def test_a_customer_named_like_a_script_renders_as_text(admin, hub):
    customer = factories.customer(hub, SCRIPT, email="script@example.dk")
    event_id = ids_in(shown(admin, f"customer={customer.id}"))[0]
    for page in (shown(admin), admin.get(f"/admin/audit/{event_id}").text):
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
