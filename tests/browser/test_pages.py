"""Every page of the admin, filled with the demo business, opens cleanly at laptop and phone widths.

"Cleanly": the page has its heading, the browser reports no error (a script or style the CSP
refused would be one), and at phone width nothing is wider than the screen. The same walk saves
the screenshots the docs show.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from connectors.hubspot.simulator import HubSpotSimulator
from hub import demo
from hub.bootstrap import Hub
from hub.store.models import Customer, Event, Subscription
from tests.browser.conftest import sign_in
from tests.browser.test_admin_flows import sync_out

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def demo_business(hub: Hub, sim: HubSpotSimulator, connection_id: str) -> None:
    """A year of the demo business, synced to the simulator."""
    demo.load(hub, days=365)
    sync_out(hub, connection_id, "customer", "subscription")


def first_id(hub: Hub, model: type[Customer] | type[Subscription]) -> str:
    with hub.session_factory() as session:
        found = session.scalar(select(model.id).order_by(model.created_at).limit(1))
        assert found is not None
        return found


def latest_subscription_change(hub: Hub) -> int:
    """The newest subscription event: its detail has a before and after."""
    with hub.session_factory() as session:
        found = session.scalar(
            select(Event.id).where(Event.type.startswith("subscription.")).order_by(Event.id.desc()).limit(1)
        )
        assert found is not None
        return found


def fits_the_screen(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_every_main_page_opens_cleanly_with_the_demo_business(demo_business, hub, page, staff, shots):
    sign_in(page, staff)
    pages = {
        "dashboard": "/admin/",
        "customers": "/admin/customers",
        "customer": f"/admin/customers/{first_id(hub, Customer)}",
        "subscriptions": "/admin/subscriptions",
        "connections": "/admin/connections",
        "mappings": "/admin/mappings",
        "sync-log": "/admin/sync",
        "audit-log": "/admin/audit",
        "audit-event": f"/admin/audit/{latest_subscription_change(hub)}",
        "staff-users": "/admin/users",
    }
    for name, path in pages.items():
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        expect(page.locator("main")).not_to_contain_text("went wrong")
        shots(page, name)

    page.goto("/admin/")
    expect(page.locator("svg").first).to_be_visible()  # the charts, drawn on the server
    expect(page.locator("main")).to_contain_text("kr.")  # Danish money for a Danish browser

    page.set_viewport_size(PHONE)
    for name, path in pages.items():
        page.goto(path)
        assert fits_the_screen(page), f"the {name} page is wider than a phone's screen"
    page.goto(pages["customers"])
    shots(page, "customers-phone", full_page=False)
    page.get_by_text("Menu").click()
    expect(page.get_by_role("link", name="Conflicts")).to_be_visible()
