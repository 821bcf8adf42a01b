"""Correcting a customer's details in the admin: the API's rules, only what changed, audited as its author."""

from __future__ import annotations

from html import unescape

import pytest
from sqlalchemy import select

from hub.store.models import Customer, Event
from tests import factories

FORM = {
    "name": "Carl Carlsen",
    "email": "billing@carl.example",
    "vat_number": "DK12345678",
    "country": "DK",
    "currency": "DKK",
    "locale": "da_DK",
    "address_line1": "Nørregade 1",
    "address_line2": "",
    "postal_code": "1165",
    "city": "København K",
}


@pytest.fixture
def carl(hub):  # type: ignore[no-untyped-def]
    fields = {k: v or None for k, v in FORM.items() if k != "name"}
    return factories.customer(hub, FORM["name"], **fields)


def edit(browser, customer_id: str, **changes: str):  # type: ignore[no-untyped-def]
    path = f"/admin/customers/{customer_id}/edit"
    return browser.post(path, {**FORM, **changes}, token_from=path)


def stored(hub, customer_id: str) -> Customer:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.get(Customer, customer_id)


def updates(hub, customer_id: str) -> list[Event]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        query = select(Event).where(Event.aggregate_id == customer_id, Event.type == "customer.updated")
        return list(session.scalars(query.order_by(Event.id)))


def test_the_form_opens_with_the_customers_details_from_an_edit_button(admin, carl):
    detail = admin.get(f"/admin/customers/{carl.id}").text
    assert f'href="/admin/customers/{carl.id}/edit">Edit</a>' in detail
    page = unescape(admin.get(f"/admin/customers/{carl.id}/edit").text)
    for value in ("billing@carl.example", "DK12345678", "Nørregade 1", "København K", "da_DK"):
        assert f'value="{value}"' in page


def test_saving_changes_only_what_changed_and_audits_it_as_the_staff_user(hub, admin, admin_user, carl):
    saved = edit(admin, carl.id, email="  carl@carl.example ", city="Aarhus C", vat_number="")
    assert saved.status_code == 302 and saved.headers["Location"] == f"/admin/customers/{carl.id}"
    page = admin.get(saved.headers["Location"]).text
    assert "Carl Carlsen is saved (email, VAT number, city)" in unescape(page)
    customer = stored(hub, carl.id)
    assert (customer.email, customer.city, customer.vat_number) == ("carl@carl.example", "Aarhus C", None)
    assert customer.address_line1 == "Nørregade 1"  # untouched
    (event,) = updates(hub, carl.id)
    assert event.actor == f"staff:{admin_user.id}"
    assert event.data["after"] == {"email": "carl@carl.example", "city": "Aarhus C", "vat_number": None}
    assert event.data["before"]["email"] == "billing@carl.example"


def test_an_unchanged_form_saves_nothing(hub, admin, carl):
    saved = edit(admin, carl.id)
    assert saved.status_code == 302
    assert "Nothing changed." in admin.get(saved.headers["Location"]).text
    assert updates(hub, carl.id) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "carl at carl.example", "Not a valid email address."),
        ("email", "", "This field is required."),
        ("country", "Danmark", "must be an ISO 3166 code like DK"),
        ("locale", "Danish", "must be a locale like da_DK"),
        ("name", "x" * 201, "Field cannot be longer than 200 characters."),
    ],
)
def test_a_wrong_value_is_named_next_to_its_field_and_nothing_is_saved(
    hub, admin, carl, field, value, message
):
    refused = edit(admin, carl.id, **{field: value})
    assert refused.status_code == 400
    page = unescape(refused.text)
    errors = page[page.index(f'id="{field}-errors"') :].split("</ul>")[0]
    assert message in errors
    assert updates(hub, carl.id) == []
    assert stored(hub, carl.id).email == "billing@carl.example"


def test_an_unknown_currency_and_the_currency_of_a_subscriber_are_refused_at_the_field(hub, admin, carl):
    unknown = edit(admin, carl.id, currency="XYZ")
    assert unknown.status_code == 400 and "is not an ISO 4217 currency code" in unknown.text
    factories.subscribe(hub, carl.id, factories.plan(hub, 9_900).id)
    fixed = edit(admin, carl.id, currency="EUR")
    assert fixed.status_code == 400
    assert "the currency of a customer with subscriptions cannot change" in fixed.text
    assert stored(hub, carl.id).currency == "DKK"


def test_a_name_with_markup_is_shown_as_text_in_the_form(hub, admin):
    sneaky = factories.customer(hub, "<script>alert(1)</script>")
    page = admin.get(f"/admin/customers/{sneaky.id}/edit").text
    assert "<script>alert(1)</script>" not in page
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page


def test_a_viewer_can_neither_open_nor_post_the_form(hub, viewer, carl):
    assert "/edit" not in viewer.get(f"/admin/customers/{carl.id}").text
    assert viewer.get(f"/admin/customers/{carl.id}/edit").status_code == 403
    token_page = f"/admin/customers/{carl.id}"
    posted = viewer.post(
        f"/admin/customers/{carl.id}/edit", {**FORM, "city": "Odense"}, token_from=token_page
    )
    assert posted.status_code == 403
    assert stored(hub, carl.id).city == "København K"


def test_an_unknown_customer_is_a_404(admin):
    assert admin.get("/admin/customers/cus_nobody/edit").status_code == 404
    assert admin.post("/admin/customers/cus_nobody/edit", FORM).status_code == 404
