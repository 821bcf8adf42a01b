"""Shared fixtures: real SQLite and real PostgreSQL, migrated once per test worker.

Tests that take the ``hub`` fixture run once per database (``[sqlite]`` and
``[postgresql]``). ``--db sqlite`` or ``--db postgresql`` narrows that.
Tests marked ``postgres_only`` (row locks, true concurrency) are not collected
for SQLite. Every test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import delete, text, update

from config import load_settings
from connectors.hubspot.simulator import HubSpotSimulator
from hub.bootstrap import Hub, build
from hub.services.clock import FixedClock
from hub.services.connections import CreateConnection, create_connection, open_connector
from hub.services.crypto import generate_key
from hub.store.migrate import upgrade
from hub.store.models import Base, NumberSequence

PG_ADMIN = os.environ.get("ABOHUB_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=["sqlite", "postgresql", "all"], default="all")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        kinds = ["sqlite", "postgresql"] if chosen == "all" else [chosen]
        if metafunc.definition.get_closest_marker("postgres_only"):
            kinds = [k for k in kinds if k == "postgresql"]
        metafunc.parametrize("database", kinds, indirect=True, scope="session")


_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex


def _database_name() -> str:
    """Unique per test run and worker, so parallel runs on one server never collide."""
    return f"abohub_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{_RUN[:8]}"


def _pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of the requested kind; yields its URL."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "abohub.db"
        url = f"sqlite:///{path}"
    else:
        name = _database_name()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = _pg_url(name)
    hub = build(load_settings({}, database_url=url, testing=True))
    upgrade(hub.engine)
    hub.close()
    yield url
    if request.param == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_hub(database_url: str, **overrides: object) -> Hub:
    settings = load_settings({}, database_url=database_url, testing=True, **overrides)
    return build(settings, clock=FixedClock(START))


def wipe(hub: Hub) -> None:
    with hub.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != NumberSequence.__tablename__:
                connection.execute(delete(table))
        connection.execute(update(NumberSequence).values(last_value=0))


@pytest.fixture
def hub(database: str) -> Iterator[Hub]:
    """A Hub on a clean database with a fixed clock at ``START`` and a key for connection secrets."""
    instance = make_hub(database, encryption_keys=(generate_key(),))
    wipe(instance)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def clock(hub: Hub) -> FixedClock:
    assert isinstance(hub.clock, FixedClock)
    return hub.clock


@pytest.fixture
def sim() -> Iterator[HubSpotSimulator]:
    """A HubSpot simulator that sends no webhooks (tests that want them start their own)."""
    with HubSpotSimulator(webhook_mode="off") as simulator:
        yield simulator


@pytest.fixture
def connection_id(hub: Hub, sim: HubSpotSimulator) -> str:
    """A HubSpot connection to ``sim`` with its default mappings and custom properties."""
    config = {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret}
    connection = create_connection(CreateConnection("hubspot", "HubSpot", config), hub.uow("tests"))
    open_connector(hub.uow(), connection.id).ensure_properties()
    return connection.id


def count(hub: Hub, table: str) -> int:
    with hub.engine.connect() as connection:
        return int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
