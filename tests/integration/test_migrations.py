"""The models and the migrations describe the same schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hub.store.migrate import current, downgrade, upgrade
from hub.store.models import Base


def test_autogenerate_finds_no_difference(hub):
    with hub.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrations_run_down_and_up_again(tmp_path):
    from config import load_settings
    from hub.bootstrap import build

    hub = build(load_settings({}, database_url=f"sqlite:///{tmp_path / 'roundtrip.db'}", testing=True))
    upgrade(hub.engine)
    head = current(hub.engine)
    downgrade(hub.engine, "base")
    assert current(hub.engine) is None
    upgrade(hub.engine)
    assert current(hub.engine) == head
    hub.close()
