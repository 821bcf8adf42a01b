"""The subscriptions pages: a filtered, paged list; the detail with the admin's actions, each audited."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from hub.admin.formatting import money
from hub.services import catalog
from hub.services import subscriptions as subs
from hub.store.models import Event
from tests import factories


def detail(subscription_id: str) -> str:
    return f"/admin/subscriptions/{subscription_id}"


def events_of(hub, subscription_id: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(type, actor) of the subscription's events, oldest first."""
    with hub.session_factory() as session:
        query = (
            select(Event.type, Event.actor).where(Event.aggregate_id == subscription_id).order_by(Event.id)
        )
        return [(kind, actor) for kind, actor in session.execute(query)]


def followed(browser, path: str, data: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Post like a browser and land where the redirect leads."""
    response = browser.post(path, data)
    assert response.status_code == 302, response.text
    return browser.get(response.headers["Location"])


def field_errors(html: str) -> list[str]:
    return re.findall(r'<ul class="field-errors" id="([\w-]+)-errors">', html)


@pytest.fixture
def plans(hub):  # type: ignore[no-untyped-def]
    return factories.plan(hub, amount=10_000, name="Basic"), factories.plan(hub, amount=30_000, name="Pro")


@pytest.fixture
def subscription_id(hub, plans):  # type: ignore[no-untyped-def]
    customer = factories.customer(hub, "Karen Jensen")
    return factories.subscribe(hub, customer.id, plans[0].id)


def test_the_list_filters_by_status_and_pages(admin, hub, plans, clock):
    ids = [factories.subscribe(hub, factories.customer(hub, f"Person {n}").id, plans[0].id) for n in range(3)]
    subs.pause_subscription(subs.PauseSubscription(ids[1]), hub.uow())
    paused = admin.get("/admin/subscriptions?status=paused").text
    assert "Person 1" in paused and "Person 0" not in paused and "Person 2" not in paused
    by_customer = admin.get("/admin/subscriptions?sort=customer&limit=2").text
    assert "Person 0" in by_customer and "Person 1" in by_customer and "Person 2" not in by_customer
    assert "page 1 of 2" in by_customer
    assert "Person 2" in admin.get("/admin/subscriptions?sort=customer&limit=2&page=2").text
    assert admin.get("/admin/subscriptions?status=bogus").status_code == 400


def test_pages_render_for_both_roles_and_a_viewer_sees_no_buttons(admin, viewer, subscription_id):
    for path in ("/admin/subscriptions", detail(subscription_id)):
        assert admin.get(path).status_code == 200
        assert viewer.get(path).status_code == 200
    assert "Preview the change" in admin.get(detail(subscription_id)).text
    seen = viewer.get(detail(subscription_id)).text
    assert "<button" not in seen.replace('<button type="submit" class="link-button">Sign out</button>', "")
    assert viewer.get(detail("sub_nobody")).status_code == 404


def test_pause_then_resume_is_audited_with_the_staff_user(admin, hub, admin_user, subscription_id):
    page = followed(admin, f"{detail(subscription_id)}/pause")
    assert page.status_code == 200 and "The subscription is paused." in page.text
    assert factories.get_subscription(hub, subscription_id).status == "paused"
    assert "Resume now" in page.text
    # Saying before the click what it costs: a new period, invoiced at once (Basic: 100.00 a period).
    assert "starts a new period today and invoices it at once: 100,00" in page.text

    page = followed(admin, f"{detail(subscription_id)}/resume")
    assert "The subscription is running again; its new period is invoiced." in page.text
    assert factories.get_subscription(hub, subscription_id).status == "active"
    staff = [(kind, who) for kind, who in events_of(hub, subscription_id) if who.startswith("staff:")]
    actor = f"staff:{admin_user.id}"
    assert staff == [("subscription.paused", actor), ("subscription.resumed", actor)]


def test_an_impossible_action_is_a_flash_message_not_an_error_page(admin, hub, subscription_id):
    page = followed(admin, f"{detail(subscription_id)}/resume")
    assert page.status_code == 200
    assert '<li class="flash flash-error">cannot resume a subscription that is active</li>' in page.text
    assert factories.get_subscription(hub, subscription_id).status == "active"


def test_change_plan_shows_the_preview_and_changes_only_on_confirm(admin, hub, plans, subscription_id):
    basic, pro = plans
    expected = subs.preview_change(subs.ChangePlan(subscription_id, plan_id=pro.id), hub.uow())
    assert expected.total != 0

    preview = admin.post(f"{detail(subscription_id)}/change-plan", {"change-plan_id": pro.id})
    assert preview.status_code == 200
    assert money(expected.total, "DKK", "da_DK") in preview.text
    assert "Confirm the change" in preview.text
    assert factories.get_subscription(hub, subscription_id).plan_id == basic.id

    confirmed = admin.post(
        f"{detail(subscription_id)}/change-plan",
        {"change-plan_id": pro.id, "change-confirm": "yes"},
        token_from=detail(subscription_id),
    )
    assert confirmed.status_code == 302
    assert factories.get_subscription(hub, subscription_id).plan_id == pro.id
    assert events_of(hub, subscription_id)[-1][0] == "subscription.plan_changed"


def test_cancel_at_period_end_stores_reason_and_feedback(admin, hub, subscription_id):
    form = {
        "cancel-reason": "too_expensive",
        "cancel-feedback": "Cheaper elsewhere",
        "cancel-at_period_end": "y",
    }
    page = admin.post(f"{detail(subscription_id)}/cancel", form, token_from=detail(subscription_id))
    assert page.status_code == 302
    cancelled = factories.get_subscription(hub, subscription_id)
    assert cancelled.cancel_at_period_end and cancelled.status == "active"
    assert (cancelled.cancel_reason, cancelled.cancel_feedback) == ("too_expensive", "Cheaper elsewhere")
    shown = admin.get(detail(subscription_id)).text
    assert "Cheaper elsewhere" in shown and "Undo the scheduled change" in shown

    admin.post(f"{detail(subscription_id)}/cancel", {"cancel-reason": "unused"})
    assert factories.get_subscription(hub, subscription_id).status == "canceled"


def test_apply_a_coupon(admin, hub, subscription_id):
    catalog.create_coupon(
        catalog.CreateCoupon(code="LOYAL10", name="Loyalty", duration="forever", percent_off=10), hub.uow()
    )
    page = followed(admin, f"{detail(subscription_id)}/apply-coupon", {"coupon-coupon_code": "LOYAL10"})
    assert "The coupon applies" in page.text and "LOYAL10" in page.text
    assert factories.get_subscription(hub, subscription_id).coupon_id is not None


@pytest.mark.parametrize(
    ("action", "form", "field"),
    [
        ("change-plan", {"change-plan_id": "plan_nobody"}, "change-plan_id"),
        ("change-plan", {"change-plan_id": ""}, "change-plan_id"),
        ("cancel", {"cancel-reason": ""}, "cancel-reason"),
        ("cancel", {"cancel-reason": "because"}, "cancel-reason"),
        ("apply-coupon", {"coupon-coupon_code": "NOSUCHCODE"}, "coupon-coupon_code"),
        ("apply-coupon", {"coupon-coupon_code": ""}, "coupon-coupon_code"),
    ],
)
def test_bad_input_is_a_field_error_next_to_the_field(admin, hub, subscription_id, action, form, field):
    before = events_of(hub, subscription_id)
    page = admin.post(f"{detail(subscription_id)}/{action}", form)
    assert page.status_code == 400
    assert field_errors(page.text) == [field]
    assert factories.get_subscription(hub, subscription_id).status == "active"
    assert events_of(hub, subscription_id) == before


def test_a_viewer_can_post_no_action_and_nothing_changes(viewer, hub, plans, subscription_id):
    posts = {
        "pause": {},
        "resume": {},
        "reactivate": {},
        "cancel": {"cancel-reason": "unused"},
        "change-plan": {"change-plan_id": plans[1].id, "change-confirm": "yes"},
        "apply-coupon": {"coupon-coupon_code": "X"},
    }
    for action, form in posts.items():
        assert viewer.post(f"{detail(subscription_id)}/{action}", form).status_code == 403, action
    unchanged = factories.get_subscription(hub, subscription_id)
    assert (unchanged.status, unchanged.plan_id, unchanged.cancel_reason) == ("active", plans[0].id, None)
    assert [kind for kind, _ in events_of(hub, subscription_id)] == ["subscription.created"]
