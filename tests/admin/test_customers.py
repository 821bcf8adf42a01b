"""The customers pages: search, filter, sort and page the list; one customer with all that touches them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from hub.admin.formatting import money
from hub.services import payments, subscriptions
from hub.services.connections import CreateConnection, create_connection
from hub.store.models import Invoice, Link, Payment
from tests import factories

SCRIPT = "<script>alert(1)</script>"


def names_in(html: str) -> list[str]:
    """The customer names in the list's rows, in order."""
    return re.findall(r'<a href="/admin/customers/cus_[^"]+">([^<]+)</a>', html)


@pytest.fixture
def three(hub):  # type: ignore[no-untyped-def]
    """Anna (no subscription), Bo (paying 500 kr.) and Carl (paying 1.234,50 kr., with a VAT number)."""
    small, large = factories.plan(hub, amount=50_000), factories.plan(hub, amount=123_450)
    anna = factories.customer(hub, "Anna Andersen")
    bo = factories.customer(hub, "Bo Berg")
    carl = factories.customer(hub, "Carl Carlsen", email="billing@carl.example", vat_number="DK12345678")
    factories.subscribe(hub, bo.id, small.id)
    factories.subscribe(hub, carl.id, large.id)
    return anna, bo, carl


def test_the_list_searches_name_email_and_vat_number(admin, three):
    assert names_in(admin.get("/admin/customers").text) == ["Anna Andersen", "Bo Berg", "Carl Carlsen"]
    assert names_in(admin.get("/admin/customers?q=berg").text) == ["Bo Berg"]
    assert names_in(admin.get("/admin/customers?q=billing@carl").text) == ["Carl Carlsen"]
    assert names_in(admin.get("/admin/customers?q=DK1234").text) == ["Carl Carlsen"]
    nobody = admin.get("/admin/customers?q=zelda")
    assert names_in(nobody.text) == [] and "No customers match." in nobody.text


def test_the_list_filters_by_revenue_state_and_shows_mrr_in_the_readers_locale(admin, three):
    page = admin.get("/admin/customers?state=active").text
    assert names_in(page) == ["Bo Berg", "Carl Carlsen"]
    assert money(123_450, "DKK", "da_DK") in page  # 1.234,50 kr.
    assert names_in(admin.get("/admin/customers?state=none").text) == ["Anna Andersen"]
    assert admin.get("/admin/customers?state=bogus").status_code == 400


def test_the_list_sorts_on_whitelisted_columns_only(admin, three):
    by_mrr = admin.get("/admin/customers?sort=mrr&dir=desc").text
    assert names_in(by_mrr) == ["Carl Carlsen", "Bo Berg", "Anna Andersen"]
    assert 'aria-sort="descending"' in by_mrr
    by_name_down = admin.get("/admin/customers?sort=name&dir=desc").text
    assert names_in(by_name_down) == ["Carl Carlsen", "Bo Berg", "Anna Andersen"]
    unknown = admin.get("/admin/customers?sort=email;drop&dir=sideways")
    assert unknown.status_code == 200
    assert names_in(unknown.text) == ["Anna Andersen", "Bo Berg", "Carl Carlsen"]


def test_the_list_pages_and_keeps_the_filters_in_its_links(admin, hub):
    for number in range(5):
        factories.customer(hub, f"Person {number}")
    first = admin.get("/admin/customers?q=person&limit=2").text
    assert names_in(first) == ["Person 0", "Person 1"]
    assert "page 1 of 3" in first
    assert re.search(
        r'href="/admin/customers\?[^"]*q=person[^"]*page=2[^"]*" rel="next"', first.replace("&amp;", "&")
    )
    last = admin.get("/admin/customers?q=person&limit=2&page=3").text
    assert names_in(last) == ["Person 4"]
    assert names_in(admin.get("/admin/customers?q=person&limit=2&page=99").text) == ["Person 4"]


def test_the_detail_shows_subscriptions_invoices_payments_links_and_the_audit_trail(
    admin, hub, admin_user, clock
):
    customer = factories.customer(hub, "Dora Dahl", vat_number="DK87654321")
    plan = factories.plan(hub, amount=123_450, name="Gold")
    subscription_id = factories.subscribe(hub, customer.id, plan.id)
    connection = create_connection(
        CreateConnection(
            connector="hubspot",
            name="Sales HubSpot",
            config={"base_url": "http://127.0.0.1:9", "access_token": "t0ken", "client_secret": "s3cret"},
        ),
        hub.uow(),
    )
    with hub.session_factory() as session:
        session.add(
            Link(
                connection_id=connection.id,
                object_type="customer",
                local_id=customer.id,
                remote_object="contacts",
                remote_id="hs-4711",
                fingerprints={},
                last_pushed_at=clock.now(),
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        session.commit()
    admin.post(
        f"/admin/subscriptions/{subscription_id}/pause", token_from=f"/admin/subscriptions/{subscription_id}"
    )

    payments.collect_due(hub.uow())
    with hub.session_factory() as session:
        invoice = session.scalars(select(Invoice).where(Invoice.customer_id == customer.id)).one()
        paid = session.scalars(select(Payment).where(Payment.customer_id == customer.id)).one()

    page = admin.get(f"/admin/customers/{customer.id}").text
    assert "Gold" in page and "DK87654321" in page
    invoices, payments_section = page.split("<h2>Invoices</h2>")[1].split("<h2>Payments</h2>")
    assert str(invoice.number) in invoices and money(invoice.total, "DKK", "da_DK") in invoices
    assert money(paid.amount, "DKK", "da_DK") in payments_section.split("<h2>")[0]
    assert "Sales HubSpot" in page and "contacts" in page and "hs-4711" in page
    assert "subscription.created" in page and "subscription.paused" in page
    assert f"staff:{admin_user.id}" in page


def test_pages_render_for_a_viewer_and_unknown_customers_are_a_404(viewer, three):
    anna = three[0]
    assert viewer.get("/admin/customers").status_code == 200
    assert viewer.get(f"/admin/customers/{anna.id}").status_code == 200
    assert viewer.get("/admin/customers/cus_nobody").status_code == 404


def test_a_customer_named_like_a_script_renders_as_text(admin, hub):
    customer = factories.customer(hub, SCRIPT, email="script@example.dk")
    plan = factories.plan(hub, name=SCRIPT)
    subscriptions.create_subscription(
        subscriptions.CreateSubscription(customer_id=customer.id, plan_id=plan.id), hub.uow()
    )
    for page in (
        admin.get("/admin/customers").text,
        admin.get(f"/admin/customers/{customer.id}").text,
        admin.get("/admin/subscriptions").text,
    ):
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
