"""What a member of staff does in the admin, in a real browser, and what the simulated HubSpot then shows.

Each scene is set up through the service layer before the server starts (fixtures listed before
``signed_in`` run first), so the embedded worker never races the setup; from the first click on,
only the browser acts, and the simulator is read to see the effect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from connectors.hubspot.simulator import HubSpotSimulator
from hub.bootstrap import Hub
from hub.services import customers
from hub.services.sync import push_changes
from hub.store.models import Conflict, DeadLetter, JobRun, Link
from jobs.queue import DONE, DatabaseQueue
from jobs.reconcile_jobs import RECONCILE
from jobs.relay import relay
from tests import factories
from tests.browser.conftest import PASSWORD, Served, eventually, remote_properties, sign_in


def sync_out(hub: Hub, connection_id: str, *object_types: str) -> None:
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    for object_type in object_types or ("customer",):
        push_changes(hub, connection_id, object_type)


def remote_id_of(hub: Hub, local_id: str) -> str | None:
    with hub.session_factory() as session:
        return session.scalar(select(Link.remote_id).where(Link.local_id == local_id))


@dataclass
class Scene:
    local_id: str
    remote_id: str


@pytest.fixture
def linked_subscription(hub: Hub, sim: HubSpotSimulator, connection_id: str) -> Scene:
    """Karen's monthly subscription, already a deal in HubSpot."""
    plan = factories.plan(hub, 14_900, name="Kaffe hver måned")
    karen = factories.customer(hub, "Karen Jensen")
    subscription_id = factories.subscribe(hub, karen.id, plan.id)
    sync_out(hub, connection_id, "customer", "subscription")
    deal = remote_id_of(hub, subscription_id)
    assert deal is not None and remote_properties(sim, "deals", deal)["abohub_status"] == "Active"
    return Scene(subscription_id, deal)


@pytest.fixture
def linked_customer(hub: Hub, sim: HubSpotSimulator, connection_id: str) -> Scene:
    karen = factories.customer(hub, "Karen Jensen", country="DK")
    sync_out(hub, connection_id)
    contact = remote_id_of(hub, karen.id)
    assert contact is not None and remote_properties(sim, "contacts", contact)["country"] == "DK"
    return Scene(karen.id, contact)


@pytest.fixture
def clashing_customer(hub: Hub, sim: HubSpotSimulator, linked_customer: Scene, connection_id: str) -> Scene:
    """Both sides renamed Karen differently since the last sync: one open conflict on her name."""
    sim.edit("contacts", linked_customer.remote_id, {"lastname": "Olsen"})
    change = customers.UpdateCustomer(linked_customer.local_id, {"name": "Karen Hansen"})
    customers.update_customer(change, hub.uow())
    sync_out(hub, connection_id)
    with hub.session_factory() as session:
        assert session.scalar(select(Conflict.id).where(Conflict.resolved_at.is_(None))) is not None
    return linked_customer


@pytest.fixture
def refused_customer(hub: Hub, sim: HubSpotSimulator, connection_id: str) -> str:
    """Bo's email has a typo HubSpot refuses: his push is a dead letter and he is not in HubSpot."""
    bo = factories.customer(hub, "Bo Dal", email="bo at example")
    sync_out(hub, connection_id)
    assert remote_id_of(hub, bo.id) is None
    with hub.session_factory() as session:
        assert session.scalar(select(DeadLetter.id).where(DeadLetter.local_id == bo.id)) is not None
    return bo.id


@pytest.fixture
def refused_change(hub: Hub, sim: HubSpotSimulator, linked_customer: Scene, served: Served) -> Scene:
    """Karen's new VAT number was refused while HubSpot's private app lacked its contacts write scope.
    The scope is back now, but nothing pushes her again until someone replays the dead letter (or the
    next nightly reconcile repairs her). Staged on the running server once its scheduler has ticked and
    the reconcile that tick may have queued (between 02:00 and 08:00 UTC) is done, so that it cannot
    repair her first."""
    scheduler = served.runtime.scheduler
    assert scheduler is not None
    eventually(lambda: scheduler.ticks > 0, "the scheduler's first tick")

    def reconciled() -> bool:
        with hub.session_factory() as session:
            status = session.scalar(select(JobRun.status).where(JobRun.function == RECONCILE))
            return status in (None, DONE)

    eventually(reconciled, "the start-up reconcile, if one was due")
    sim.faults.add("missing_scopes", count=None, path=r"/contacts/batch/(create|update|upsert)")
    change = customers.UpdateCustomer(linked_customer.local_id, {"vat_number": "DK11223344"})
    customers.update_customer(change, hub.uow())

    def refused() -> str | None:
        with hub.session_factory() as session:
            return session.scalar(
                select(DeadLetter.id).where(DeadLetter.local_id == linked_customer.local_id)
            )

    eventually(refused, "HubSpot refusing Karen's change")
    sim.faults.clear()
    return linked_customer


def flash(page: Page) -> str:
    return page.locator(".flashes").inner_text()


def test_signing_in_shows_the_dashboard_and_signing_out_ends_the_session(page, staff, shots):
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.get_by_label("Username").fill(staff)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("form")).to_contain_text("Unknown username or wrong password.")
    shots(page, "login")

    sign_in(page, staff, PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dashboard")
    expect(page.get_by_text("MRR").first).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/admin/login"))
    page.goto("/admin/customers")
    expect(page).to_have_url(re.compile(r"/admin/login"))


def test_pausing_and_resuming_a_subscription_reaches_the_deal_in_hubspot(
    linked_subscription, sim, signed_in, shots
):
    page, deal = signed_in, linked_subscription.remote_id
    page.goto(f"/admin/subscriptions/{linked_subscription.local_id}")
    expect(page.locator(".state")).to_have_text("active")

    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator(".flashes")).to_contain_text("The subscription is paused.")
    expect(page.locator(".state")).to_have_text("paused")
    eventually(lambda: remote_properties(sim, "deals", deal)["abohub_status"] == "Paused", "the paused deal")
    shots(page, "subscription")

    page.get_by_role("button", name="Resume now").click()
    resumed = "The subscription is running again; its new period is invoiced."
    expect(page.locator(".flashes")).to_contain_text(resumed)
    expect(page.locator(".state")).to_have_text("active")
    eventually(lambda: remote_properties(sim, "deals", deal)["abohub_status"] == "Active", "the resumed deal")


def test_editing_a_mapping_checks_it_previews_it_and_saving_pushes_the_new_form_of_a_field(
    linked_customer, sim, connection_id, signed_in, shots
):
    page, contact = signed_in, linked_customer.remote_id
    page.goto("/admin/mappings")
    page.locator("tr", has_text="contacts").get_by_role("link", name="Edit").click()
    country = page.locator("tr", has=page.locator("input[value='country']"))
    country.locator("input[name$='-to_remote']").fill("lower | upperr")
    page.get_by_role("button", name="Check").click()
    expect(country.locator(".field-errors")).to_contain_text("unknown transform 'upperr'")
    expect(country.locator("input[name$='-to_remote']")).to_have_attribute("aria-invalid", "true")

    # The hub owns the country from now on: pushed only, and lower-cased on the way out.
    country.locator("select[name$='-direction']").select_option("push")
    country.locator("input[name$='-to_remote']").fill("lower")
    page.get_by_label("Record to preview").select_option(linked_customer.local_id)
    page.get_by_role("button", name="Preview on the record").click()
    expect(page.locator("tr.differs")).to_contain_text("dk")
    assert remote_properties(sim, "contacts", contact)["country"] == "DK"  # a preview writes nothing
    shots(page, "mapping")

    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flashes")).to_contain_text("Saved as version 2")

    def lowered() -> bool:
        return remote_properties(sim, "contacts", contact)["country"] == "dk"

    eventually(lowered, "the lower-cased country")


def test_resolving_a_conflict_with_an_edited_value_syncs_it_to_both_sides(
    hub, clashing_customer, sim, signed_in, shots
):
    page, contact = signed_in, clashing_customer.remote_id
    page.get_by_role("link", name="Conflicts").click()
    row = page.locator("tr", has_text="Karen Hansen")
    expect(row).to_contain_text("Karen Olsen")
    shots(page, "conflicts")

    row.get_by_label("Or set").fill("Karen Holm")
    row.get_by_role("button", name="Use this value").click()
    expect(page.locator(".flashes")).to_contain_text("both sides now agree")
    expect(page.get_by_text("No conflicts match.")).to_be_visible()
    contact_now = remote_properties(sim, "contacts", contact)
    assert (contact_now["firstname"], contact_now["lastname"]) == ("Karen", "Holm")
    page.goto(f"/admin/customers/{clashing_customer.local_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Karen Holm")


def test_fixing_a_refused_email_in_the_admin_sends_the_customer_to_hubspot_and_settles_its_dead_letter(
    hub, refused_customer, sim, signed_in, shots
):
    page = signed_in
    page.get_by_role("link", name="Sync log").click()
    page.get_by_role("link", name="Dead letters").click()
    expect(page.locator("tr", has_text="INVALID_EMAIL")).to_be_visible()

    page.get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Bo Dal").click()
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Email").fill("bo@example")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#email-errors")).to_contain_text("Not a valid email address.")
    shots(page, "customer-edit")
    page.get_by_label("Email").fill("bo@example.dk")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flashes")).to_contain_text("Bo Dal is saved (email)")

    contact = eventually(lambda: remote_id_of(hub, refused_customer), "Bo's contact in HubSpot")
    assert remote_properties(sim, "contacts", contact)["email"] == "bo@example.dk"
    page.get_by_role("link", name="Sync log").click()
    page.get_by_role("link", name="Dead letters").click()
    expect(page.get_by_text("No dead letters match.")).to_be_visible()


def test_replaying_a_dead_letter_once_hubspot_accepts_writes_again_updates_the_contact(
    hub, refused_change, sim, signed_in, shots
):
    page = signed_in
    page.get_by_role("link", name="Sync log").click()
    page.get_by_role("link", name="Dead letters").click()
    row = page.locator("tr", has_text="required scopes")
    expect(row).to_be_visible()
    shots(page, "dead-letters")
    assert not remote_properties(sim, "contacts", refused_change.remote_id).get("abohub_vat_number")

    row.get_by_role("button", name="Replay").click()
    expect(page.locator(".flashes")).to_contain_text("1 record(s) will be sent again")
    eventually(
        lambda: (
            remote_properties(sim, "contacts", refused_change.remote_id).get("abohub_vat_number")
            == "DK11223344"
            or None
        ),
        "the VAT number on Karen's contact",
    )
    page.reload()
    expect(page.get_by_text("No dead letters match.")).to_be_visible()
