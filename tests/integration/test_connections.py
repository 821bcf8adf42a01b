"""Connections: validated configs, secrets encrypted at rest and never shown back."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from hub.domain.errors import InvalidRequest
from hub.services.connections import (
    CreateConnection,
    UpdateConnection,
    create_connection,
    open_connector,
    rotate_keys,
    update_connection,
)
from hub.services.crypto import generate_key
from hub.store.models import Connection, Event
from tests.conftest import make_hub

SECRET_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "cs-very-secret-client-value"


@pytest.fixture
def hub(database):  # type: ignore[no-untyped-def]
    from tests.conftest import wipe

    instance = make_hub(database, encryption_keys=(generate_key(),))
    wipe(instance)
    yield instance
    instance.close()


def hubspot(hub):  # type: ignore[no-untyped-def]
    return create_connection(
        CreateConnection(
            "hubspot", "HubSpot", {"access_token": SECRET_TOKEN, "client_secret": CLIENT_SECRET}
        ),
        hub.uow("tests"),
    )


def raw_rows(hub) -> str:  # type: ignore[no-untyped-def]
    with hub.engine.connect() as connection:
        stored = connection.execute(text("SELECT config_encrypted FROM connections")).scalars().all()
        events = connection.execute(text("SELECT data FROM events")).scalars().all()
    return " ".join(str(x) for x in [*stored, *events])


def test_secrets_are_encrypted_at_rest_and_hidden_in_the_audit_trail(hub):
    connection = hubspot(hub)
    everything = raw_rows(hub)
    assert SECRET_TOKEN not in everything and CLIENT_SECRET not in everything
    with hub.session_factory() as session:
        event = session.scalars(select(Event).where(Event.aggregate_id == connection.id)).one()
    assert event.data["config"]["access_token"] == "***"
    assert open_connector(hub.uow(), connection.id).config["access_token"] == SECRET_TOKEN


def test_an_update_without_secrets_keeps_them(hub):
    connection = hubspot(hub)
    update_connection(UpdateConnection(connection.id, config={"requests_per_ten_seconds": 100}), hub.uow())
    config = open_connector(hub.uow(), connection.id).config
    assert config["access_token"] == SECRET_TOKEN and config["requests_per_ten_seconds"] == 100


def test_bad_configs_and_unknown_connectors_are_field_errors(hub):
    with pytest.raises(InvalidRequest) as raised:
        create_connection(CreateConnection("hubspot", "HubSpot", {"client_secret": "x"}), hub.uow())
    assert "config.access_token" in raised.value.fields
    with pytest.raises(InvalidRequest) as raised:
        create_connection(CreateConnection("salesforse", "Typo", {}), hub.uow())
    assert "connector" in raised.value.fields and "hubspot" in raised.value.message


def test_key_rotation_reencrypts_everything(database):
    from tests.conftest import wipe

    old = generate_key()
    first = make_hub(database, encryption_keys=(old,))
    wipe(first)
    connection = hubspot(first)
    new = generate_key()
    both = make_hub(database, encryption_keys=(new, old))
    assert rotate_keys(both.uow()) == 1
    only_new = make_hub(database, encryption_keys=(new,))
    assert open_connector(only_new.uow(), connection.id).config["access_token"] == SECRET_TOKEN
    with only_new.session_factory() as session:
        assert session.get(Connection, connection.id) is not None
    for instance in (first, both, only_new):
        instance.close()
