"""The conflicts page: the queue with both values; resolving one or many syncs the choice to both sides."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.services import customers
from hub.services.sync import push_changes
from hub.store.models import Conflict, Customer, Link
from jobs.queue import DatabaseQueue
from jobs.relay import relay
from tests import factories

SCRIPT = "<script>alert(1)</script>"


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def clash(hub, sim, connection_id, name: str = "Karen Jensen"):  # type: ignore[no-untyped-def]
    """Both sides rename the customer differently: one open conflict. Returns (customer id, remote id)."""
    first = name.split()[0]
    customer = factories.customer(hub, name)
    sync_out(hub, connection_id)
    with hub.session_factory() as session:
        remote_id = session.scalar(select(Link.remote_id).where(Link.local_id == customer.id))
    sim.edit("contacts", remote_id, {"lastname": "Olsen"})
    customers.update_customer(customers.UpdateCustomer(customer.id, {"name": f"{first} Hansen"}), hub.uow())
    assert sync_out(hub, connection_id).conflicts == 1
    return customer.id, remote_id


def conflict_of(hub, customer_id: str) -> Conflict:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalars(select(Conflict).where(Conflict.local_id == customer_id)).one()


def name_of(hub, customer_id: str) -> str:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.get(Customer, customer_id).name


def remote_name(sim, remote_id: str) -> str:  # type: ignore[no-untyped-def]
    contact = sim.get("contacts", remote_id)["properties"]
    return f"{contact['firstname']} {contact['lastname']}"


def followed(browser, path: str, data: dict[str, object]):  # type: ignore[no-untyped-def]
    response = browser.post(path, data)
    assert response.status_code == 302, response.text
    return browser.get(response.headers["Location"])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"choice": "hub"}, "Karen Hansen"),
        ({"choice": "remote"}, "Karen Olsen"),
        ({"choice": "value", "value": "Karen Holm"}, "Karen Holm"),
    ],
)
def test_resolving_one_conflict_sends_the_choice_to_both_sides(
    admin, admin_user, hub, sim, connection_id, data, expected
):
    customer_id, remote_id = clash(hub, sim, connection_id)
    queue = admin.get("/admin/conflicts").text
    assert "Karen Hansen" in queue and "Karen Olsen" in queue
    assert '>name<div class="hint">remote: firstname, lastname</div>' in queue  # the field on each side
    assert f"/admin/customers/{customer_id}" in queue
    conflict = conflict_of(hub, customer_id)

    page = followed(admin, f"/admin/conflicts/{conflict.id}/resolve", data)
    assert "both sides now agree" in page.text and "No conflicts match." in page.text
    assert name_of(hub, customer_id) == expected
    assert remote_name(sim, remote_id) == expected
    resolved = conflict_of(hub, customer_id)
    assert (resolved.status, resolved.resolution) == ("resolved", data["choice"])
    assert resolved.resolved_by == f"staff:{admin_user.id}"
    assert expected in admin.get("/admin/conflicts?status=resolved").text

    again = followed(admin, f"/admin/conflicts/{conflict.id}/resolve", {"choice": "hub"})
    assert "already resolved" in again.text


def test_an_empty_edited_value_is_a_field_error_and_changes_nothing(admin, hub, sim, connection_id):
    customer_id, remote_id = clash(hub, sim, connection_id)
    conflict = conflict_of(hub, customer_id)
    response = admin.post(f"/admin/conflicts/{conflict.id}/resolve", {"choice": "value", "value": "  "})
    assert response.status_code == 400
    assert f'id="value-{conflict.id}-errors"' in response.text and "enter the value" in response.text
    bogus = admin.post(f"/admin/conflicts/{conflict.id}/resolve", {"choice": "whatever"})
    assert bogus.status_code == 400 and f'id="value-{conflict.id}-errors"' in bogus.text
    assert conflict_of(hub, customer_id).status == "open"
    assert name_of(hub, customer_id) == "Karen Hansen" and remote_name(sim, remote_id) == "Karen Olsen"
    missing = followed(admin, "/admin/conflicts/cf_nobody/resolve", {"choice": "hub"})
    assert "no conflict cf_nobody" in missing.text


def test_bulk_resolve_takes_the_remote_values_of_the_selected_only(admin, hub, sim, connection_id):
    karen, karen_remote = clash(hub, sim, connection_id, "Karen Jensen")
    anna, anna_remote = clash(hub, sim, connection_id, "Anna Berg")
    bo, _bo_remote = clash(hub, sim, connection_id, "Bo Dal")
    chosen = [conflict_of(hub, karen).id, conflict_of(hub, anna).id]

    page = followed(admin, "/admin/conflicts/resolve", {"choice": "remote", "conflict_id": chosen})
    assert "Took the remote value for 2 conflict(s)." in page.text
    assert (name_of(hub, karen), name_of(hub, anna)) == ("Karen Olsen", "Anna Olsen")
    assert (remote_name(sim, karen_remote), remote_name(sim, anna_remote)) == ("Karen Olsen", "Anna Olsen")
    assert conflict_of(hub, bo).status == "open" and "Bo Hansen" in page.text

    nothing = followed(admin, "/admin/conflicts/resolve", {"choice": "hub"})
    assert "Select at least one conflict" in nothing.text
    assert conflict_of(hub, bo).status == "open"


def test_a_viewer_sees_the_queue_without_buttons_and_cannot_resolve(viewer, hub, sim, connection_id):
    customer_id, remote_id = clash(hub, sim, connection_id)
    conflict = conflict_of(hub, customer_id)
    page = viewer.get("/admin/conflicts")
    assert page.status_code == 200 and "Karen Olsen" in page.text
    assert "/resolve" not in page.text and "Keep the hub" not in page.text and "conflict_id" not in page.text
    assert viewer.post(f"/admin/conflicts/{conflict.id}/resolve", {"choice": "hub"}).status_code == 403
    assert (
        viewer.post("/admin/conflicts/resolve", {"choice": "hub", "conflict_id": conflict.id}).status_code
        == 403
    )
    assert conflict_of(hub, customer_id).status == "open" and remote_name(sim, remote_id) == "Karen Olsen"


def test_values_are_escaped_and_filters_apply(admin, hub, clock, connection_id):
    customer = factories.customer(hub, "Eve Evil")
    with hub.session_factory() as session, session.begin():
        session.add(
            Conflict(
                id="cf_script",
                connection_id=connection_id,
                object_type="customer",
                local_id=customer.id,
                remote_id="1",
                field="firstname+lastname",
                remote_field="firstname+lastname",
                hub_value={"name": SCRIPT},
                remote_value={"name": "Eve"},
                hub_changed_at=clock.now(),
                remote_changed_at=clock.now(),
                status="open",
                created_at=clock.now(),
            )
        )
    page = admin.get("/admin/conflicts").text
    assert SCRIPT not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "cf_script" in admin.get(f"/admin/conflicts?connection_id={connection_id}").text
    assert "cf_script" not in admin.get("/admin/conflicts?status=resolved").text
    assert admin.get("/admin/conflicts?connection_id=con_nobody").status_code == 400
