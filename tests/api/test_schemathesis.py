"""Property-based API testing from our own OpenAPI document: no input may produce a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from hub.app import create_app
from hub.services.apikeys import create_api_key
from tests.conftest import make_hub, wipe

# One schema object, loaded from a throwaway app; each test case runs against the real app
# on the test database through the `app` fixture below.
_schema_app = None


def _load_schema():  # type: ignore[no-untyped-def]
    from config import load_settings
    from hub.bootstrap import build

    global _schema_app
    _schema_app = create_app(hub=build(load_settings({}, database_url="sqlite://", testing=True)))
    return schemathesis.openapi.from_wsgi("/api/openapi.json", _schema_app)


schema = _load_schema()


@pytest.fixture(scope="module")
def live(database):  # type: ignore[no-untyped-def]
    hub = make_hub(database)
    wipe(hub)
    app = create_app(hub=hub)
    key = create_api_key("schemathesis", hub.uow()).secret
    yield app, key
    hub.close()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case, live):  # type: ignore[no-untyped-def]
    app, key = live
    response = case.call(app=app, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
