"""Cookies, headers, error pages and permissions, for every admin route there is (and will be)."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from sqlalchemy import select
from werkzeug.routing import Rule

from hub.admin.auth import POSTS_FOR_EVERY_ROLE
from hub.admin.navigation import NAVIGATION
from hub.admin.security import HEADERS
from hub.app import create_app
from hub.store.models import LoginAttempt
from tests.admin.conftest import PASSWORD, Browser, csrf_token
from tests.conftest import make_hub

NOT_PAGES = {"admin.static", "admin.not_found", "admin.login"}


def admin_rules(app: Flask, method: str) -> list[Rule]:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("admin.") and method in (rule.methods or set())
    ]


def url_of(rule: Rule) -> str:
    """The rule's path with every variable filled in (the records need not exist: the guard runs first)."""

    def filled(variable: re.Match[str]) -> str:
        return "1" if variable.group(1) in ("int", "float") else "x"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", filled, rule.rule)


def admin_post_urls(app: Flask) -> list[str]:
    """Every POST route of the admin but signing in and out: what a viewer may never do."""
    return [url_of(rule) for rule in admin_rules(app, "POST") if rule.endpoint not in POSTS_FOR_EVERY_ROLE]


def page_urls(app: Flask) -> list[str]:
    return [
        url_of(rule)
        for rule in admin_rules(app, "GET")
        if rule.endpoint not in NOT_PAGES and not rule.arguments
    ]


def test_a_viewer_cannot_post_anything(app, viewer):
    urls = admin_post_urls(app)
    assert "/admin/users/x/disable" in urls and "/admin/x" in urls
    for url in urls:
        response = viewer.post(url)
        assert response.status_code == 403, url
        assert "Your role does not allow this" in response.text


def test_every_page_opens_for_both_roles(app, admin, viewer):
    urls = page_urls(app)
    assert "/admin/" in urls and "/admin/users" in urls
    for url in urls:
        assert admin.get(url).status_code == 200, url
        assert viewer.get(url).status_code == 200, url


def test_every_navigation_entry_is_a_page(app, admin):
    page = admin.get("/admin/").text
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    for entry in NAVIGATION:
        assert entry.endpoint in endpoints
        assert f">{entry.label}</a>" in page


def test_an_admin_disables_a_user_and_it_is_audited(admin, admin_user, viewer_user, viewer, hub):
    from tests.admin.test_login import events

    page = admin.post(f"/admin/users/{viewer_user.id}/disable", token_from="/admin/users")
    assert page.status_code == 302
    assert "victor is disabled and signed out everywhere." in admin.get("/admin/users").text
    assert viewer.get("/admin/").status_code == 302
    [disabled] = events(hub, "staff_user.disabled")
    assert disabled.actor == f"staff:{admin_user.id}" and disabled.aggregate_id == viewer_user.id

    admin.post(f"/admin/users/{viewer_user.id}/enable", token_from="/admin/users")
    assert "victor can sign in again." in admin.get("/admin/users").text
    assert events(hub, "staff_user.enabled")[0].actor == f"staff:{admin_user.id}"
    assert Browser(admin.client.application.test_client()).login("victor").status_code == 302


def test_an_admin_cannot_disable_themselves(admin, admin_user):
    admin.post(f"/admin/users/{admin_user.id}/disable", token_from="/admin/users")
    assert "You cannot disable yourself" in admin.get("/admin/users").text
    assert admin.get("/admin/").status_code == 200


def test_unknown_records_are_a_friendly_404(admin):
    response = admin.post("/admin/users/usr_nobody/disable", token_from="/admin/users")
    assert response.status_code == 404 and "There is nothing here." in response.text


def test_viewers_see_no_buttons_they_cannot_use(viewer, admin_user):
    page = viewer.get("/admin/users").text
    assert "ada" in page and "/disable" not in page


def test_posts_without_the_csrf_token_are_refused(admin, viewer_user, hub):
    response = admin.post_raw(f"/admin/users/{viewer_user.id}/disable", {})
    assert response.status_code == 400
    with hub.session_factory() as session:
        from hub.store.models import StaffUser

        assert session.get(StaffUser, viewer_user.id).disabled_at is None


def test_session_cookie_is_httponly_and_samesite_lax_and_secure_over_https(app, admin_user):
    plain = Browser(app.test_client())
    plain.login("ada")
    cookie = plain.client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure

    secure = app.test_client()
    page = secure.get("/admin/login", base_url="https://admin.example")
    token = csrf_token(page)
    response = secure.post(
        "/admin/login",
        base_url="https://admin.example",
        data={"csrf_token": token, "username": "ada", "password": PASSWORD},
        headers={"Referer": "https://admin.example/admin/login"},
    )
    assert response.status_code == 302
    set_cookie = response.headers["Set-Cookie"]
    assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie


def test_a_forwarded_proto_header_alone_does_not_make_it_https(app):
    response = app.test_client().get("/admin/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in response.headers["Set-Cookie"]


def test_behind_a_configured_proxy_its_forwarded_scheme_and_address_count(hub, admin_user, request):
    behind_proxy = make_hub(hub.settings.database_url, proxy_hops=1)
    request.addfinalizer(behind_proxy.close)
    client = create_app(hub=behind_proxy).test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    page = client.get("/admin/login", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert "Secure" in page.headers["Set-Cookie"]
    client.post(
        "/admin/login",
        headers={**forwarded, "Referer": "https://localhost/admin/login"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
        data={"csrf_token": csrf_token(page), "username": "ada", "password": "wrong"},
    )
    with hub.session_factory() as session:  # throttled as the client, not as the proxy everyone shares
        assert session.scalars(select(LoginAttempt.client_address)).all() == ["203.0.113.7"]


def test_security_headers_on_every_admin_response(app, admin, browser):
    responses = [
        browser.get("/admin/login"),
        browser.get("/admin/"),  # the redirect to sign in
        admin.get("/admin/"),
        admin.get("/admin/no-such-page"),
        admin.get("/admin/static/admin.css"),
        admin.post_raw("/admin/logout", {}),  # refused: no token
    ]
    for response in responses:
        for name, value in HEADERS.items():
            assert response.headers[name] == value, (response.request.path, name)
        response.close()  # the stylesheet is streamed from its file
    csp = HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


def test_pages_have_no_inline_script_or_style(admin):
    for url in ("/admin/", "/admin/users"):
        page = admin.get(url).text
        assert "<script" not in page and "style=" not in page and "<style" not in page


def test_a_failure_shows_a_friendly_page_never_a_stack_trace(admin, monkeypatch):
    from hub.admin.views import dashboard

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(dashboard, "compute_series", broken)
    response = admin.get("/admin/")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "secret internal detail" not in response.text and "Traceback" not in response.text


def test_unknown_admin_pages_are_a_friendly_404(admin):
    response = admin.get("/admin/nothing/here")
    assert response.status_code == 404 and "There is nothing here." in response.text


def test_a_session_expires_after_twelve_hours(viewer, clock):
    clock.set(clock.now() + timedelta(hours=11, minutes=59))
    assert viewer.get("/admin/").status_code == 200
    clock.set(clock.now() + timedelta(minutes=2))
    assert viewer.get("/admin/").status_code == 302
