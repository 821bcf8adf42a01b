"""Signing in and out: CSRF, fresh sessions, logout that ends the session, throttling, the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from hub.services import users
from hub.services.users import MAX_FAILURES_PER_USERNAME_AND_ADDRESS
from hub.store.models import Event
from tests.admin.conftest import PASSWORD, Browser

REFUSED = "Unknown username or wrong password."


def events(hub, kind: str) -> list[Event]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return list(session.scalars(select(Event).where(Event.type == kind).order_by(Event.id)))


def test_pages_need_a_signed_in_user(browser):
    response = browser.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_signing_in_lands_on_the_page_asked_for(browser, admin_user):
    login_url = browser.get("/admin/users").headers["Location"]
    credentials = {"username": "ADA", "password": PASSWORD}  # names are not case-sensitive
    response = browser.post(login_url, credentials, token_from="/admin/login")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/users"
    page = browser.get("/admin/users")
    assert page.status_code == 200 and "Signed in as ada." in page.text


@pytest.mark.parametrize("target", ["//evil.example/admin/", "https://evil.example/admin/", "/api/v1/"])
def test_next_never_leads_off_the_admin(browser, admin_user, target):
    credentials = {"username": "ada", "password": PASSWORD}
    response = browser.post(f"/admin/login?next={target}", credentials, token_from="/admin/login")
    assert response.headers["Location"] == "/admin/"


def test_the_login_form_needs_its_csrf_token(browser, admin_user):
    browser.get("/admin/login")
    response = browser.post_raw("/admin/login", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 400
    assert "The form had expired" in response.text
    assert browser.get("/admin/").status_code == 302  # not signed in


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(browser, admin_user, hub):
    wrong = browser.login("ada", "not the password")
    unknown = browser.login("nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert REFUSED in wrong.text and REFUSED in unknown.text
    assert wrong.text.replace("ada", "nobody").count(REFUSED) == unknown.text.count(REFUSED)
    failed = events(hub, "staff_user.login_failed")
    assert [e.data["reason"] for e in failed] == ["wrong_password", "unknown_user"]
    assert all(e.actor == "anonymous" for e in failed)
    assert not any("not the password" in str(e.data) for e in failed)
    assert [e.data["username"] for e in failed] == ["ada", None]  # an unknown name may be a mistyped password


def test_a_password_typed_as_the_name_is_kept_nowhere(browser, hub):
    browser.login(PASSWORD, PASSWORD)
    with hub.engine.connect() as connection:
        for table in ("events", "outbox", "login_attempts"):
            rows = connection.exec_driver_sql(f"SELECT * FROM {table}").all()
            assert rows and PASSWORD not in str(rows), table


def test_signing_in_starts_a_new_session(app, admin_user, hub):
    browser = Browser(app.test_client())
    browser.get("/admin/login")
    before = browser.session_cookie()
    assert browser.login("ada").status_code == 302
    first = browser.session_cookie()
    assert first and first != before
    # The cookie from before signing in (one an attacker could have planted) signs nobody in.
    planted = Browser(app.test_client())
    planted.client.set_cookie("session", before)
    assert planted.get("/admin/").status_code == 302

    again = Browser(app.test_client())
    again.login("ada")
    assert again.session_cookie() != first  # every sign-in gets its own session
    [signed_in, *_] = events(hub, "staff_user.logged_in")
    assert signed_in.actor == f"staff:{admin_user.id}"
    assert PASSWORD not in str(signed_in.data)


def test_logout_ends_the_session_on_the_server(app, admin, admin_user, hub):
    cookie = admin.session_cookie()
    response = admin.post("/admin/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/login"
    assert "You are signed out." in admin.get("/admin/login").text
    # Replaying the cookie from before the logout signs nobody in.
    replay = Browser(app.test_client())
    replay.client.set_cookie("session", cookie)
    assert replay.get("/admin/").status_code == 302
    [logged_out] = events(hub, "staff_user.logged_out")
    assert logged_out.actor == f"staff:{admin_user.id}"


def test_logout_needs_a_post_with_csrf(admin):
    assert admin.get("/admin/logout").status_code == 404  # a link or an image cannot sign anyone out
    assert admin.post_raw("/admin/logout", {}).status_code == 400
    assert admin.get("/admin/").status_code == 200  # still signed in


def test_a_disabled_user_cannot_sign_in_and_is_signed_out(app, admin, viewer, viewer_user, hub):
    from hub.services.users import disable_user

    disable_user("victor", hub.uow("tests"))
    assert viewer.get("/admin/").status_code == 302  # the open session ended with the user
    again = Browser(app.test_client())
    response = again.login("victor")
    assert response.status_code == 401 and REFUSED in response.text
    assert events(hub, "staff_user.login_failed")[-1].data["reason"] == "disabled"


def test_guessing_is_throttled_per_name_and_address_without_locking_out_the_owner(app, admin_user, clock):
    attacker = Browser(app.test_client(), address="203.0.113.66")
    for _ in range(MAX_FAILURES_PER_USERNAME_AND_ADDRESS):
        assert attacker.login("ada", "guess").status_code == 401
    throttled = attacker.login("ada", PASSWORD)  # even the right password, from there, now
    assert throttled.status_code == 429
    assert "Too many attempts" in throttled.text and int(throttled.headers["Retry-After"]) > 0

    owner = Browser(app.test_client(), address="198.51.100.7")
    assert owner.login("ada").status_code == 302  # another address is not locked out

    clock.set(clock.now() + timedelta(minutes=16))
    assert attacker.login("ada").status_code == 302  # the window passed


def test_guessing_many_names_from_one_address_is_throttled(app, admin_user, monkeypatch):
    monkeypatch.setattr(users, "MAX_FAILURES_PER_ADDRESS", 8)  # the rule, with fewer slow password checks
    attacker = Browser(app.test_client(), address="203.0.113.99")
    for number in range(users.MAX_FAILURES_PER_ADDRESS):
        assert attacker.login(f"name{number}", "guess").status_code == 401
    assert attacker.login("somebody-else", "guess").status_code == 429
    assert Browser(app.test_client(), address="198.51.100.8").login("ada").status_code == 302


def test_a_successful_sign_in_clears_its_own_failures(app, admin_user):
    person = Browser(app.test_client(), address="198.51.100.9")
    for _ in range(MAX_FAILURES_PER_USERNAME_AND_ADDRESS - 1):
        person.login("ada", "typo")
    assert person.login("ada").status_code == 302
    person.post("/admin/logout")
    for _ in range(MAX_FAILURES_PER_USERNAME_AND_ADDRESS - 1):
        assert person.login("ada", "typo").status_code == 401
    assert person.login("ada").status_code == 302
