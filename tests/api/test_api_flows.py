"""The REST API as a developer at the business uses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.services.billing import RunBilling, run_billing


def catalog(api) -> dict:  # type: ignore[no-untyped-def]
    status, product = api.post("/products", {"name": "Kaffeklubben"})
    assert status == 201
    plans = {}
    for name, amount, interval in [
        ("monthly", 14_900, "month"),
        ("quarterly", 39_900, "quarter"),
        ("yearly", 149_900, "year"),
        ("pro", 29_900, "month"),
    ]:
        status, plan = api.post(
            "/plans",
            {
                "product_id": product["id"],
                "name": name,
                "amount": amount,
                "currency": "DKK",
                "interval": interval,
            },
        )
        assert status == 201, plan
        plans[name] = plan
    return plans


def new_customer(api, **fields) -> dict:  # type: ignore[no-untyped-def]
    body = {
        "name": "Mette Hansen",
        "email": "mette@example.dk",
        "vat_number": "DK12345678",
        "address_line1": "Algade 1",
        "postal_code": "4000",
        "city": "Roskilde",
        **fields,
    }
    status, customer = api.post("/customers", body)
    assert status == 201, customer
    return customer


def test_subscribe_and_get_a_paid_first_invoice(api):
    plans = catalog(api)
    customer = new_customer(api)
    status, sub = api.post(
        "/subscriptions", {"customer_id": customer["id"], "plan_id": plans["quarterly"]["id"]}
    )
    assert status == 201
    assert sub["status"] == "active"
    assert sub["mrr"] == 13_300  # 399.00 kr a quarter / 3
    assert sub["current_period_start"] == "2026-01-15T09:00:00+00:00"
    assert sub["current_period_end"] == "2026-04-15T09:00:00+00:00"

    status, invoices = api.get("/invoices", subscription_id=sub["id"])
    assert status == 200 and len(invoices["data"]) == 1
    status, invoice = api.get(f"/invoices/{invoices['data'][0]['id']}")
    assert invoice["number"] == "INV-000001"
    assert (invoice["subtotal"], invoice["vat"], invoice["total"]) == (39_900, 9_975, 49_875)
    assert invoice["status"] == "paid" and invoice["amount_due"] == 0
    assert invoice["lines"][0]["vat_rate"] == "25.00"

    status, customer_now = api.get(f"/customers/{customer['id']}")
    assert customer_now["mrr"] == 13_300 and customer_now["revenue_state"] == "active"


def test_a_customer_patch_changes_only_the_fields_it_names(api):
    customer = new_customer(api, country="SE", currency="SEK", locale="sv_SE", metadata={"crm": "7"})
    status, changed = api.patch(f"/customers/{customer['id']}", {"city": "Odense"})
    assert status == 200, changed
    assert changed["city"] == "Odense"
    unchanged = ("name", "email", "country", "currency", "locale", "metadata", "vat_number", "postal_code")
    assert {k: changed[k] for k in unchanged} == {k: customer[k] for k in unchanged}
    status, error = api.patch(f"/customers/{customer['id']}", {})
    assert status == 422 and "at least one field" in str(error["error"]["fields"])
    status, error = api.patch(f"/customers/{customer['id']}", {"email": "not an address"})
    assert status == 422 and "email" in error["error"]["fields"]


def test_openapi_says_a_customer_patch_needs_no_field_in_particular(app):
    spec = app.test_client().get("/api/openapi.json").get_json()
    body = spec["paths"]["/api/v1/customers/{customer_id}"]["patch"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert "email" in schema["properties"] and not schema.get("required")
    create = spec["paths"]["/api/v1/customers"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    if "$ref" in create:
        create = spec["components"]["schemas"][create["$ref"].rsplit("/", 1)[1]]
    assert set(create["required"]) == {"name", "email"}


def test_pause_resume_cancel_through_the_actions(api, hub, clock):
    plans = catalog(api)
    customer = new_customer(api)
    _, sub = api.post("/subscriptions", {"customer_id": customer["id"], "plan_id": plans["monthly"]["id"]})
    path = f"/subscriptions/{sub['id']}"

    clock.set(datetime(2026, 1, 20, tzinfo=UTC))
    status, paused = api.post(f"{path}/pause", {})
    assert status == 200 and paused["status"] == "paused" and paused["mrr"] == 0

    status, again = api.post(f"{path}/pause", {})
    assert status == 409
    assert again["error"]["type"] == "illegal_transition"
    assert "paused" in again["error"]["message"]

    clock.set(datetime(2026, 2, 3, tzinfo=UTC))
    status, resumed = api.post(f"{path}/resume")
    assert status == 200 and resumed["status"] == "active"
    assert resumed["current_period_start"] == "2026-02-03T00:00:00+00:00"
    assert resumed["current_period_end"] == "2026-03-03T00:00:00+00:00"

    status, scheduled = api.post(
        f"{path}/cancel", {"reason": "too_expensive", "feedback": "For dyrt", "at_period_end": True}
    )
    assert status == 200 and scheduled["cancel_at_period_end"] and scheduled["status"] == "active"
    status, back = api.post(f"{path}/reactivate")
    assert status == 200 and not back["cancel_at_period_end"]
    status, canceled = api.post(f"{path}/cancel", {"reason": "unused"})
    assert status == 200 and canceled["status"] == "canceled" and canceled["cancel_reason"] == "unused"

    status, events = api.get("/events", aggregate_id=sub["id"])
    types = [e["type"] for e in events["data"]]
    assert types == [
        "subscription.canceled",
        "subscription.reactivated",
        "subscription.cancel_scheduled",
        "subscription.resumed",
        "subscription.paused",
        "subscription.created",
    ]
    assert all(e["actor"].startswith("api_key:") for e in events["data"])
    assert events["data"][4]["data"]["after"]["status"] == "paused"
    assert events["data"][4]["data"]["before"]["status"] == "active"


def test_change_plan_preview_matches_what_is_invoiced(api, clock):
    plans = catalog(api)
    customer = new_customer(api)
    _, sub = api.post("/subscriptions", {"customer_id": customer["id"], "plan_id": plans["monthly"]["id"]})
    # Jan 15 09:00 -> Feb 15 09:00 is 31 days = 2,678,400 s. The change at Jan 25 17:30 leaves
    # 2,678,400 - (10 d 8 h 30 min = 894,600 s) = 1,783,800 s.
    # Credit 14,900 x 1,783,800 / 2,678,400 = 9,923.32 -> 9,923;
    # charge 29,900 x the same = 19,913.24 -> 19,913.
    # Net 9,990; VAT per line: -2,480.75 -> -2,481 and 4,978.25 -> 4,978; total 9,990 + 2,497 = 12,487.
    clock.set(datetime(2026, 1, 25, 17, 30, tzinfo=UTC))
    body = {"plan_id": plans["pro"]["id"], "invoice_now": True}
    status, preview = api.post(f"/subscriptions/{sub['id']}/change-plan/preview", body)
    assert status == 200
    assert [line["amount"] for line in preview["lines"]] == [-9_923, 19_913]
    assert [line["vat_amount"] for line in preview["lines"]] == [-2_481, 4_978]
    assert preview["total"] == 12_487

    status, changed = api.post(f"/subscriptions/{sub['id']}/change-plan", body)
    assert status == 200 and changed["plan_id"] == plans["pro"]["id"] and changed["mrr"] == 29_900
    _, invoices = api.get("/invoices", subscription_id=sub["id"])
    latest = invoices["data"][0]
    assert latest["billing_reason"] == "subscription_update"
    assert latest["total"] == preview["total"] and latest["status"] == "paid"


def test_amounts_are_minor_units_and_timestamps_need_an_offset(api):
    plans = catalog(api)
    customer = new_customer(api)
    status, body = api.post(
        "/subscriptions",
        {"customer_id": customer["id"], "plan_id": plans["monthly"]["id"], "start_at": "2026-01-01T00:00:00"},
    )
    assert status == 422
    assert "start_at" in body["error"]["fields"]
    status, body = api.post(
        "/plans",
        {
            "product_id": plans["monthly"]["product_id"],
            "name": "x",
            "amount": 10.5,
            "currency": "DKK",
            "interval": "month",
        },
    )
    assert status == 422 and "amount" in body["error"]["fields"]


def test_each_bad_field_is_named(api):
    status, body = api.post(
        "/customers", {"name": "", "email": "not-an-email", "currency": "kr", "surprise": 1}
    )
    assert status == 422
    assert body["error"]["type"] == "validation_error"
    assert set(body["error"]["fields"]) == {"name", "email", "currency", "surprise"}


def test_references_to_missing_records_are_field_errors_and_unknown_ids_are_404(api):
    status, body = api.post(
        "/subscriptions",
        {"customer_id": "cus_01M89SMV29MKYFK38R89HYVJXB", "plan_id": "plan_01M89SMV29MKYFK38R89HYVJXB"},
    )
    assert status == 422 and "customer_id" in body["error"]["fields"]
    status, body = api.get("/subscriptions/sub_01M89SMV29MKYFK38R89HYVJXB")
    assert status == 404 and body["error"]["type"] == "not_found"


def test_currency_mismatch_is_refused(api):
    plans = catalog(api)
    customer = new_customer(api, currency="EUR", email="euro@example.de")
    status, body = api.post(
        "/subscriptions", {"customer_id": customer["id"], "plan_id": plans["monthly"]["id"]}
    )
    assert status == 422
    assert "priced in DKK" in body["error"]["fields"]["plan_id"][0]


def test_cursor_pagination_walks_every_record_once(api):
    for n in range(7):
        new_customer(api, email=f"c{n}@example.dk", name=f"Customer {n}")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"starting_after": cursor} if cursor else {})}
        status, page = api.get("/customers", **params)
        assert status == 200
        seen += [c["email"] for c in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if not page["has_more"]:
            assert cursor is None
            break
    assert pages == 3
    assert seen == [f"c{n}@example.dk" for n in reversed(range(7))]


def test_filters(api, clock):
    plans = catalog(api)
    a = new_customer(api, email="a@example.dk")
    b = new_customer(api, email="b@example.dk")
    _, sub_a = api.post("/subscriptions", {"customer_id": a["id"], "plan_id": plans["monthly"]["id"]})
    clock.set(datetime(2026, 1, 16, tzinfo=UTC))
    api.post("/subscriptions", {"customer_id": b["id"], "plan_id": plans["yearly"]["id"]})
    api.post(f"/subscriptions/{sub_a['id']}/pause", {})

    _, by_customer = api.get("/subscriptions", customer_id=a["id"])
    assert [s["id"] for s in by_customer["data"]] == [sub_a["id"]]
    _, paused = api.get("/subscriptions", status="paused")
    assert [s["id"] for s in paused["data"]] == [sub_a["id"]]
    _, later = api.get("/subscriptions", created_gte="2026-01-16T00:00:00+00:00")
    assert [s["customer_id"] for s in later["data"]] == [b["id"]]
    _, by_email = api.get("/customers", email="b@example.dk")
    assert [c["id"] for c in by_email["data"]] == [b["id"]]


def test_credit_note_on_a_paid_invoice_refunds(api):
    plans = catalog(api)
    customer = new_customer(api)
    _, sub = api.post("/subscriptions", {"customer_id": customer["id"], "plan_id": plans["monthly"]["id"]})
    _, invoices = api.get("/invoices", subscription_id=sub["id"])
    invoice_id = invoices["data"][0]["id"]
    _, invoice = api.get(f"/invoices/{invoice_id}")
    line_id = invoice["lines"][0]["id"]

    status, note = api.post(
        "/credit-notes",
        {
            "invoice_id": invoice_id,
            "reason": "product_unsatisfactory",
            "lines": [{"invoice_line_id": line_id, "net_amount": 4_000}],
        },
    )
    assert status == 201, note
    assert note["number"] == "CN-000001"
    assert (note["net_amount"], note["vat"], note["total"], note["refunded"]) == (4_000, 1_000, 5_000, 5_000)
    _, refunds = api.get("/payments", invoice_id=invoice_id, kind="refund")
    assert [p["amount"] for p in refunds["data"]] == [-5_000]

    status, too_much = api.post(
        "/credit-notes",
        {
            "invoice_id": invoice_id,
            "reason": "duplicate",
            "lines": [{"invoice_line_id": line_id, "net_amount": 20_000}],
        },
    )
    assert status == 422 and "lines" in too_much["error"]["fields"]


def test_one_off_invoice_draft_finalize_and_manual_payment(api):
    customer = new_customer(api)
    status, draft = api.post(
        "/invoices",
        {"customer_id": customer["id"], "lines": [{"description": "Opsætning", "unit_amount": 50_000}]},
    )
    assert status == 201 and draft["status"] == "draft" and draft["number"] is None
    assert draft["total"] == 62_500
    status, opened = api.post(f"/invoices/{draft['id']}/finalize")
    assert status == 200 and opened["number"] == "INV-000001" and opened["status"] == "paid"

    status, draft2 = api.post(
        "/invoices",
        {
            "customer_id": customer["id"],
            "finalize": False,
            "lines": [{"description": "Ekstra pose", "unit_amount": 8_000}],
        },
    )
    status, voided = api.post(f"/invoices/{draft2['id']}/void")
    assert status == 200 and voided["status"] == "void"
    status, _ = api.post(f"/invoices/{draft2['id']}/finalize")
    assert status == 409


def test_dunning_is_visible_through_the_api(api, hub, clock):
    plans = catalog(api)
    customer = new_customer(api, metadata={"payment_method": "recover_after_1"})
    _, sub = api.post("/subscriptions", {"customer_id": customer["id"], "plan_id": plans["monthly"]["id"]})
    assert sub["status"] == "past_due"
    _, invoices = api.get("/invoices", subscription_id=sub["id"])
    invoice_id = invoices["data"][0]["id"]
    _, attempts = api.get(f"/invoices/{invoice_id}/attempts")
    assert [(a["attempt_number"], a["status"], a["failure_code"]) for a in attempts] == [
        (1, "failed", "insufficient_funds")
    ]
    assert attempts[0]["next_attempt_at"] == "2026-01-16T09:00:00+00:00"

    clock.set(datetime(2026, 1, 16, 10, tzinfo=UTC))
    run_billing(RunBilling(), hub.uow())
    _, attempts = api.get(f"/invoices/{invoice_id}/attempts")
    assert [a["status"] for a in attempts] == ["failed", "succeeded"]
    _, now = api.get(f"/subscriptions/{sub['id']}")
    assert now["status"] == "active"


@pytest.mark.parametrize("path", ["/customers", "/subscriptions", "/invoices", "/events", "/plans"])
def test_every_resource_needs_a_key(app, path):
    client = app.test_client()
    assert client.get(f"/api/v1{path}").status_code == 401
    response = client.get(f"/api/v1{path}", headers={"Authorization": "Bearer abo_wrong"})
    assert response.status_code == 401
    assert response.get_json()["error"]["type"] == "unauthorized"


def test_a_revoked_key_stops_working(app, hub, api_key):
    from sqlalchemy import select

    from hub.services.apikeys import revoke_api_key
    from hub.store.models import ApiKey

    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_key}"}
    assert client.get("/api/v1/customers", headers=headers).status_code == 200
    with hub.session_factory() as session:
        key_id = session.scalar(select(ApiKey.id))
    revoke_api_key(key_id, hub.uow())
    assert client.get("/api/v1/customers", headers=headers).status_code == 401


def test_keys_are_stored_hashed(hub, api_key):
    from sqlalchemy import select

    from hub.store.models import ApiKey

    with hub.session_factory() as session:
        stored = session.scalars(select(ApiKey)).one()
    assert api_key not in (stored.key_hash, stored.prefix, stored.name)
    assert len(stored.key_hash) == 64


def test_openapi_describes_every_resource(app):
    spec = app.test_client().get("/api/openapi.json").get_json()
    paths = set(spec["paths"])
    for expected in [
        "/api/v1/customers",
        "/api/v1/products",
        "/api/v1/plans",
        "/api/v1/coupons",
        "/api/v1/subscriptions",
        "/api/v1/subscriptions/{subscription_id}/pause",
        "/api/v1/subscriptions/{subscription_id}/resume",
        "/api/v1/subscriptions/{subscription_id}/cancel",
        "/api/v1/subscriptions/{subscription_id}/change-plan",
        "/api/v1/subscriptions/{subscription_id}/reactivate",
        "/api/v1/invoices",
        "/api/v1/credit-notes",
        "/api/v1/payments",
        "/api/v1/events",
    ]:
        assert expected in paths
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_body_size_limit_and_malformed_json(app, api_key):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    response = client.post("/api/v1/customers", data="{not json", headers=headers)
    assert response.status_code in (400, 422)
    assert "error" in response.get_json()
    response = client.post("/api/v1/customers", data="x" * (2 * 1024 * 1024), headers=headers)
    assert response.status_code == 413


def test_backdated_start_is_allowed_future_start_is_not(api, clock):
    plans = catalog(api)
    customer = new_customer(api)
    future = (clock.now() + timedelta(days=3)).isoformat()
    status, body = api.post(
        "/subscriptions",
        {"customer_id": customer["id"], "plan_id": plans["monthly"]["id"], "start_at": future},
    )
    assert status == 422 and "start_at" in body["error"]["fields"]
    status, sub = api.post(
        "/subscriptions",
        {
            "customer_id": customer["id"],
            "plan_id": plans["monthly"]["id"],
            "start_at": "2025-12-31T00:00:00+00:00",
        },
    )
    assert status == 201 and sub["current_period_end"] == "2026-01-31T00:00:00+00:00"


def test_metrics_series_and_cohorts(api, hub, clock):
    plans = catalog(api)
    a = new_customer(api, email="a@example.dk")
    b = new_customer(api, email="b@example.dk")
    api.post("/subscriptions", {"customer_id": a["id"], "plan_id": plans["monthly"]["id"]})
    _, sub_b = api.post("/subscriptions", {"customer_id": b["id"], "plan_id": plans["yearly"]["id"]})
    clock.set(datetime(2026, 2, 10, tzinfo=UTC))
    api.post(f"/subscriptions/{sub_b['id']}/cancel", {"reason": "too_expensive"})
    clock.set(datetime(2026, 3, 5, tzinfo=UTC))

    status, series = api.get("/metrics", interval="month")
    assert status == 200
    assert series["currency"] == "DKK" and len(series["buckets"]) == 12
    assert series["end"] == "2026-04-01T00:00:00+00:00"
    by_start = {bucket["start"][:7]: bucket for bucket in series["buckets"]}
    # January: 14,900 (monthly) + 149,900 / 12 = 12,491.67 -> 12,492 (yearly) = 27,392 new MRR.
    assert by_start["2026-01"]["movements"]["new"] == 27_392
    assert by_start["2026-01"]["mrr_end"] == 27_392
    assert by_start["2026-02"]["movements"]["churned"] == 12_492
    assert by_start["2026-02"]["mrr_end"] == 14_900
    # One of the two customers on the books at the start of February churned.
    assert by_start["2026-02"]["customer_churn_rate"] == "0.5000"

    status, cohorts = api.get(
        "/metrics/cohorts", start="2026-01-01T00:00:00+00:00", end="2026-03-01T00:00:00+00:00"
    )
    assert status == 200
    january = cohorts["cohorts"][0]
    assert january["month"] == "2026-01-01" and january["customers"] == 2
    assert [p["retained_customers"] for p in january["points"]] == [2, 1]

    status, bad = api.get("/metrics", interval="fortnight")
    assert status == 422 and "interval" in bad["error"]["fields"]
    status, bad = api.get("/metrics", start="2026-03-01T00:00:00+00:00", end="2026-01-01T00:00:00+00:00")
    assert status == 422


def test_openapi_documents_the_idempotency_header_on_posts(app):
    spec = app.test_client().get("/api/openapi.json").get_json()
    post = spec["paths"]["/api/v1/customers"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])
    get = spec["paths"]["/api/v1/customers"]["get"]
    assert all(p["name"] != "Idempotency-Key" for p in get.get("parameters", []))


@pytest.mark.parametrize(
    "bound", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:00:00Z"]
)
def test_a_created_range_bound_outside_1970_to_2200_is_a_field_error(api, bound):
    status, body = api.get("/dead-letters", created_gte=bound)
    assert status == 422
    assert body["error"]["fields"] == {"created_gte": ["must be between 1970 and 2200"]}
