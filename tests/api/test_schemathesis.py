"""Property-based API testing from our own OpenAPI document: no input may produce a 5xx.

Generated ids almost never name a real record, so each case has its id path
parameters and id body fields swapped for ids of real records about half of
the time. That drives the fuzzing into the handlers (pausing a canceled
subscription, crediting a draft invoice, changing to an archived plan,
previewing a mapping on a real record of a HubSpot simulator connection…)
instead of stopping at 404.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from config import load_settings
from connectors.hubspot.simulator import HubSpotSimulator
from hub.app import create_app
from hub.bootstrap import build
from hub.services.apikeys import create_api_key
from hub.services.connections import CreateConnection, create_connection
from hub.services.crypto import generate_key
from hub.services.payments import collect_due
from tests import factories
from tests.conftest import make_hub, wipe

schema = schemathesis.openapi.from_wsgi(
    "/api/openapi.json",
    create_app(hub=build(load_settings({}, database_url="sqlite://", testing=True))),
)


def _seed(hub: Any) -> dict[str, list[str]]:
    """A few real records of every kind, in several states."""
    ids: dict[str, list[str]] = {"customer_id": [], "plan_id": [], "subscription_id": [], "invoice_id": []}
    monthly = factories.plan(hub, 14_900, "month")
    yearly = factories.plan(hub, 149_900, "year")
    trial = factories.plan(hub, 9_900, "month", trial_days=14)
    ids["plan_id"] += [monthly.id, yearly.id, trial.id]
    ids["product_id"] = [monthly.product_id]
    for n, plan in enumerate([monthly, yearly, trial, monthly]):
        customer = factories.customer(
            hub, f"Kunde {n}", meta={"payment_method": "declined"} if n == 3 else {}
        )
        ids["customer_id"].append(customer.id)
        ids["subscription_id"].append(factories.subscribe(hub, customer.id, plan.id))
    collect_due(hub.uow())
    with hub.session_factory() as session:
        from sqlalchemy import select

        from hub.store.models import Coupon, Invoice, InvoiceLine

        ids["invoice_id"] = list(session.scalars(select(Invoice.id)))
        ids["invoice_line_id"] = list(session.scalars(select(InvoiceLine.id)))
        ids["coupon_id"] = list(session.scalars(select(Coupon.id)))
    return ids


def _connect(hub: Any, sim: HubSpotSimulator, ids: dict[str, list[str]]) -> None:
    """A HubSpot connection with its default mappings, aimed at by connection, object type and record."""
    connection = create_connection(
        CreateConnection(
            "hubspot",
            "HubSpot",
            {"base_url": sim.base_url, "access_token": sim.token, "client_secret": sim.client_secret},
        ),
        hub.uow("tests"),
    )
    ids["connection_id"] = [connection.id]
    ids["object_type"] = ["customer", "subscription"]
    ids["local_id"] = ids["customer_id"] + ids["subscription_id"]


@pytest.fixture(scope="module")
def live(database):  # type: ignore[no-untyped-def]
    hub = make_hub(database, encryption_keys=(generate_key(),))
    wipe(hub)
    app = create_app(hub=hub)
    key = create_api_key("schemathesis", hub.uow()).secret
    ids = _seed(hub)
    with HubSpotSimulator(webhook_mode="off") as sim:
        _connect(hub, sim, ids)
        yield app, key, ids
    hub.close()


def _aim(case: Any, ids: dict[str, list[str]], rng: random.Random) -> None:
    for name in list(case.path_parameters or {}):
        if name in ids and ids[name] and rng.random() < 0.6:
            case.path_parameters[name] = rng.choice(ids[name])
    if isinstance(case.body, dict):
        for name, value in list(case.body.items()):
            if name in ids and ids[name] and isinstance(value, str) and rng.random() < 0.6:
                case.body[name] = rng.choice(ids[name])


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case, live):  # type: ignore[no-untyped-def]
    app, key, ids = live
    _aim(case, ids, random.Random(repr(case.body) + repr(case.path_parameters)))
    response = case.call(app=app, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
