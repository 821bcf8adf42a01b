"""The pool the webhook hot path runs on pings a connection only after it sat idle (``ping_when_idle``),
not at every checkout: a connection the server dropped meanwhile must still never reach a request."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from hub.store.db import ping_when_idle
from tests.conftest import PG_ADMIN


def backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


@pytest.mark.postgres_only
def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(database):
    now = [0.0]
    engine = create_engine(make_url(database).set(drivername="postgresql+psycopg"), pool_size=1)
    ping_when_idle(engine, idle_seconds=10, monotonic=lambda: now[0])
    try:
        dropped = backend_pid(engine)
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # a server restart, an idle timeout
            admin.execute("SELECT pg_terminate_backend(%s)", [dropped])
        now[0] += 11
        assert backend_pid(engine) != dropped  # no error: the dead connection was replaced
    finally:
        engine.dispose()
