"""`abohub users create|list|disable`, run in-process against the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from hub import cli
from hub.store.models import Event, StaffUser
from tests.admin.conftest import PASSWORD, Browser

SECRET = "a long enough secret"


@pytest.fixture
def abohub(hub, database) -> Iterator:  # type: ignore[no-untyped-def]
    """Runs the CLI on the test database (its settings and hub are built once per process: reset them)."""

    def run(*args: str, input: str | None = None) -> Result:
        cli._settings.cache_clear()
        cli._hub.cache_clear()
        try:
            return CliRunner().invoke(
                cli.main,
                list(args),
                input=input,
                env={"ABOHUB_DATABASE_URL": database, "ABOHUB_TESTING": "true"},
            )
        finally:
            if cli._hub.cache_info().currsize:
                cli._hub().close()
            cli._settings.cache_clear()
            cli._hub.cache_clear()

    yield run


def stored(hub, username: str) -> StaffUser:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.username == username))
        assert user is not None
        return user


def test_create_asks_twice_and_stores_only_an_argon2_hash(abohub, hub):
    result = abohub("users", "create", "Karen", "--role", "admin", input=f"{SECRET}\n{SECRET}\n")
    assert result.exit_code == 0, result.output
    assert "created karen (admin)" in result.output
    user = stored(hub, "karen")
    assert user.password_hash.startswith("$argon2id$") and SECRET not in user.password_hash
    with hub.session_factory() as session:
        [created] = session.scalars(select(Event).where(Event.type == "staff_user.created")).all()
    assert created.actor == "cli:users" and SECRET not in str(created.data)
    assert created.data == {"username": "karen", "role": "admin"}


def test_create_refuses_two_different_passwords(abohub, hub):
    result = abohub("users", "create", "karen", "--role", "admin", input=f"{SECRET}\nanother secret!\n" * 2)
    assert "do not match" in result.output


def test_create_from_stdin_then_sign_in_as_a_viewer(abohub, app):
    result = abohub("users", "create", "olga", "--role", "viewer", "--password-stdin", input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    browser = Browser(app.test_client())
    assert browser.login("olga").status_code == 302
    assert 'badge-viewer">viewer' in browser.get("/admin/").text


def test_bad_users_are_refused_with_field_messages(abohub):
    short = abohub("users", "create", "karen", "--role", "admin", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "password: must be at least 10 characters" in short.output
    role = abohub("users", "create", "karen", "--role", "owner", "--password-stdin", input=f"{SECRET}\n")
    assert role.exit_code == 2 and "owner" in role.output
    abohub("users", "create", "karen", "--role", "admin", "--password-stdin", input=f"{SECRET}\n")
    taken = abohub("users", "create", "KAREN", "--role", "viewer", "--password-stdin", input=f"{SECRET}\n")
    assert taken.exit_code == 1 and "username: is taken" in taken.output


def test_list_and_disable(abohub, app, hub):
    abohub("users", "create", "karen", "--role", "admin", "--password-stdin", input=f"{PASSWORD}\n")
    signed_in = Browser(app.test_client())
    signed_in.login("karen")
    listed = abohub("users", "list")
    assert "karen  admin  (active, last sign-in" in listed.output and "$argon2" not in listed.output

    disabled = abohub("users", "disable", "karen")
    assert disabled.exit_code == 0 and "disabled karen" in disabled.output
    assert "(disabled" in abohub("users", "list").output
    assert signed_in.get("/admin/").status_code == 302  # the open session ended
    assert Browser(app.test_client()).login("karen").status_code == 401
    assert abohub("users", "disable", "nobody").exit_code == 1


def test_production_hashes_are_argon2id_at_a_real_cost(monkeypatch):
    from argon2 import Type, extract_parameters

    from hub.services import users

    monkeypatch.undo()  # the tests' quick hasher off: the one production uses
    parameters = extract_parameters(users._hasher.hash(SECRET))
    assert parameters.type is Type.ID
    assert parameters.memory_cost >= 19 * 1024 and parameters.time_cost >= 2  # OWASP's minimum for argon2id
