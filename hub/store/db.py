"""Engines and sessions. Nothing connects at import time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, any_, bindparam, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

# Connections kept open per process: at least the threads of a gunicorn worker (`abohub serve
# --threads`, 4 by default; the webhook benchmark runs 8), so that a busy worker reuses them instead of
# opening and closing an overflow connection (a new server process) per request.
POOL_SIZE = 16
MAX_OVERFLOW = 16
# A connection idle longer than this is pinged before use (see ping_when_idle).
PING_AFTER_IDLE_SECONDS = 10.0


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, **kwargs)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", MAX_OVERFLOW)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_when_idle(engine)
    return engine


def autocommit_options(engine: Engine) -> dict[str, Any]:
    """Execution options under which each statement commits on its own, where that saves round trips.

    On PostgreSQL a read, or a write that is one statement, needs no BEGIN and COMMIT (two round
    trips of the three). SQLite connections already leave transactions to SQLAlchemy (see
    :func:`_sqlite_engine`); its AUTOCOMMIT level would switch the driver's own handling back on
    afterwards, so SQLite keeps its transactions.
    """
    return {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {}


def ping_when_idle(
    engine: Engine,
    idle_seconds: float = PING_AFTER_IDLE_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Check a pooled connection before use only when it sat idle for a while.

    A connection the server closed (a restart, an idle timeout, a failover) is found and replaced
    before a request uses it, like ``pool_pre_ping``, without a round trip on every checkout of a busy
    pool (webhook ingest checks out a connection twice per request). One in use moments ago
    is alive; should it break anyway, the error invalidates the whole pool, once.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or monotonic() - idle_since < idle_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("the database connection did not answer a ping")


def _sqlite_engine(database_url: str, **kwargs: Any) -> Engine:
    url = make_url(database_url)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # The driver's own transaction handling is turned off so that SQLAlchemy's
    # BEGIN is the one that counts; BEGIN IMMEDIATE takes the write lock up
    # front so two writers queue on busy_timeout instead of failing mid-way.
    engine = create_engine(
        url,
        connect_args={"isolation_level": None, "timeout": 30, "check_same_thread": False},
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(:values)``, one array parameter.

    An ``IN`` list becomes one parameter per value, expanded at every execution, and the driver then
    parses the long statement (it caches only short ones): for the hundred or so ids a sync slice reads,
    that cost twice the CPU of running the query.
    """
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]
