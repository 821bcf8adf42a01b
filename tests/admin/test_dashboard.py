"""The dashboard: the period's metrics formatted for the reader, the charts, every connection's health."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from hub.admin.formatting import money
from hub.domain.ids import new_id
from hub.services import subscriptions
from hub.services.connections import CreateConnection, create_connection
from hub.services.users import create_user
from hub.store.models import Conflict, DeadLetter, SyncState
from tests import factories
from tests.admin.conftest import PASSWORD, Browser

SCRIPT = "<script>alert(1)</script>"


def text(html: str) -> str:
    """What a reader sees: tags dropped, spaces (non-breaking too) collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html).replace("\xa0", " "))


@pytest.fixture
def business(hub, clock):  # type: ignore[no-untyped-def]
    """Two customers start on 1.234,50 kr. a month; one cancels five days later."""
    plan = factories.plan(hub, amount=123_450)
    first = factories.subscribe(hub, factories.customer(hub, "Karen Jensen").id, plan.id)
    factories.subscribe(hub, factories.customer(hub, "Ole Hansen").id, plan.id)
    clock.set(clock.now() + timedelta(days=5))
    subscriptions.cancel_subscription(
        subscriptions.CancelSubscription(first, reason="too_expensive"), hub.uow()
    )


def test_amounts_are_formatted_by_babel_in_danish():
    assert money(123_450, "DKK", "da_DK") == "1.234,50\xa0kr."  # the space keeps amount and unit together
    assert money(123_450, "DKK", "da_DK").replace("\xa0", " ") == "1.234,50 kr."


def test_the_dashboard_shows_the_periods_metrics(business, admin):
    page = admin.get("/admin/")
    assert page.status_code == 200
    seen = text(page.text)
    assert "Dashboard feb. 2025 – jan. 2026 · DKK" in seen  # the last 12 months by default
    assert "MRR 1.234,50 kr. from 0,00 kr." in seen
    assert "ARR 14.814,00 kr." in seen
    assert "Customer churn 50,00 % 1 churned of 2" in seen
    assert "Revenue churn –" in seen  # no MRR at the period's start: not defined, not 0
    assert "Quick ratio 2,00" in seen
    assert "LTV 29.628,00 kr." in seen  # ARPA 1.234,50 kr. ÷ (50 % churn over 12 months)


def test_the_charts_are_inline_svg_with_the_movements(business, admin):
    page = admin.get("/admin/").text
    assert page.count("<svg") == 3
    assert re.search(r'<rect class="series-new"[^>]*><title>jan\. 26: New 2\.469,00\xa0kr\.</title>', page)
    assert re.search(
        r'<rect class="series-churned"[^>]*><title>jan\. 26: Churn −1\.234,50\xa0kr\.</title>', page
    )
    assert "jan. 26: Customer churn 50,00\xa0%" in page


def test_the_period_can_be_a_quarter_or_a_month(business, admin):
    quarter = text(admin.get("/admin/?period=quarter&month=2026-02&currency=DKK").text)
    assert "Dashboard Q1 2026 · DKK" in quarter and "MRR 1.234,50 kr." in quarter
    month = admin.get("/admin/?period=month&month=2025-12&currency=DKK")
    assert "Dashboard december 2025 · DKK" in text(month.text)
    assert "MRR 0,00 kr." in text(month.text)
    assert month.text.count('class="tick"') == 3 * 5  # three charts of the five weeks of December 2025


def test_a_bad_period_is_shown_next_to_its_field(business, admin):
    response = admin.get("/admin/?period=year&month=2026-13&currency=DKK")
    assert response.status_code == 400
    field = re.search(r'<div class="field has-error">\s*<label for="month">.*?</div>', response.text, re.S)
    assert field and "use a month such as 2026-03" in field.group(0)
    unknown = admin.get("/admin/?period=decade&currency=XXX")
    assert unknown.status_code == 400 and "Not a valid choice" in unknown.text


def test_amounts_follow_the_users_locale(app, hub, business):
    create_user("grace", PASSWORD, "viewer", hub.uow("tests"), locale="en_GB")
    english = Browser(app.test_client())
    english.login("grace")
    assert "MRR DKK1,234.50" in text(english.get("/admin/").text)


def test_every_connections_health_is_shown_escaped(admin, hub, clock):
    connection = create_connection(
        CreateConnection(
            connector="hubspot",
            name=SCRIPT,
            config={"base_url": "http://127.0.0.1:9", "access_token": "t0ken", "client_secret": "s3cret"},
        ),
        hub.uow(),
    )
    now = clock.now()
    with hub.session_factory() as session:
        session.add_all(
            [
                SyncState(
                    connection_id=connection.id,
                    object_type="customer",
                    local_id="cus_1",
                    wanted_event_id=1,
                    dirty_since=now,
                    attempts=2,
                    next_attempt_at=now,
                ),
                SyncState(
                    connection_id=connection.id,
                    object_type="customer",
                    local_id="cus_2",
                    wanted_event_id=2,
                    dirty_since=now,
                    attempts=0,
                    next_attempt_at=now,
                ),
                Conflict(
                    id=new_id("cfl"),
                    connection_id=connection.id,
                    object_type="customer",
                    local_id="cus_1",
                    field="email",
                    remote_field="email",
                    hub_value={"v": "a"},
                    remote_value={"v": "b"},
                    status="open",
                    created_at=now,
                ),
                DeadLetter(
                    id=new_id("dl"),
                    connection_id=connection.id,
                    object_type="customer",
                    operation="push",
                    idempotency_key="k",
                    reason=SCRIPT,
                    attempts=1,
                    created_at=now,
                ),
            ]
        )
        session.commit()
    page = admin.get("/admin/").text
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    row = text(page.split("&lt;script&gt;alert(1)&lt;/script&gt;</strong>", 1)[1].split("</tr>", 1)[0])
    assert "hubspot needs attention never 2 (1 retrying) 1 1" in row
    assert "t0ken" not in page and "s3cret" not in page
