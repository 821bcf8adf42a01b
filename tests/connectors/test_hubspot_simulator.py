"""The HubSpot simulator behaves like HubSpot for what a connector uses.

Every test talks HTTP (``requests``) to a real simulator on 127.0.0.1, and
webhooks are received by a real little server here and verified with an
independent implementation of HubSpot's v3 signature. Shapes are checked
against ``vendor-specs/FACTS.md`` (HubSpot section) and the signer against the
shared signature vectors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connectors.hubspot.simulator import HubSpotSimulator, sign_v1, sign_v2, sign_v3

REPO = Path(__file__).resolve().parents[2]
SHARED_VECTORS = REPO.parent / "shared" / "vendor-specs" / "test-vectors" / "webhook-signature-vectors.json"
CONTACTS = "/crm/v3/objects/contacts"
ISO_MS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


# --------------------------------------------------------------------------- helpers
def verify_v3(
    secret: str, method: str, uri: str, body: bytes, timestamp: str, signature: str, now_ms: int
) -> bool:
    """An independent HubSpot v3 check: fresh (5 minutes) and HMAC-SHA256 over method+URI+body+timestamp."""
    if abs(now_ms - int(timestamp)) > 300_000:
        return False
    message = method.encode() + uri.encode() + body + timestamp.encode()
    expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature)


def property_errors(response: requests.Response) -> list[dict[str, Any]]:
    """The per-property results HubSpot embeds in a VALIDATION_ERROR message."""
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    return json.loads(body["message"][len(prefix) :])


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class Receiver:
    """A webhook endpoint: records each POST; answers ``fail_first`` of them with 500."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.port}/webhooks/hubspot"
        self.thread = threading.Thread(
            target=lambda: self.server.serve_forever(poll_interval=0.01), daemon=True
        )
        self.thread.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.received.append(
                {
                    "url": request.url,
                    "method": request.method,
                    "headers": dict(request.headers),
                    "body": request.get_data(),
                }
            )
            failing = len(self.received) <= self.fail_first
        return Response(status=500 if failing else 204)(environ, start_response)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for r in self.received for e in json.loads(r["body"])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sim(receiver: Receiver) -> Iterator[HubSpotSimulator]:
    """Generous limits (the rate-limit tests make their own), webhooks queued until flushed."""
    with HubSpotSimulator(
        rate_limit=10_000,
        search_rate_limit=10_000,
        webhook_urls=[receiver.url],
        webhook_mode="manual",
        webhook_retry_delays=(0.01, 0.01),
    ) as s:
        yield s


@pytest.fixture
def http(sim: HubSpotSimulator) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers.update(sim.headers())
    yield session
    session.close()


def url(sim: HubSpotSimulator, path: str) -> str:
    return sim.base_url + path


def create_contact(http: requests.Session, sim: HubSpotSimulator, **props: Any) -> dict[str, Any]:
    response = http.post(url(sim, CONTACTS), json={"properties": props})
    assert response.status_code == 201, response.text
    return response.json()


# ------------------------------------------------------------------------------ auth
def test_private_app_token_is_required(sim: HubSpotSimulator) -> None:
    with requests.Session() as anon:
        missing = anon.get(url(sim, CONTACTS))
        wrong = anon.get(url(sim, CONTACTS), headers={"Authorization": "Bearer pat-na1-nope"})
        good = anon.get(url(sim, CONTACTS), headers=sim.headers())
    for refused in (missing, wrong):
        assert refused.status_code == 401
        body = refused.json()
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["correlationId"] and "Authentication credentials not found" in body["message"]
        assert "X-HubSpot-RateLimit-Remaining" not in refused.headers
    assert good.status_code == 200
    assert good.headers["X-HubSpot-RateLimit-Daily"] == "500000"


def test_oauth_code_exchange_refresh_and_expiry(receiver: Receiver) -> None:
    with HubSpotSimulator(access_token_ttl=60) as sim, requests.Session() as s:
        token_url = url(sim, "/oauth/v1/token")
        form = {
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "redirect_uri": "http://app/cb",
        }
        code = sim.authorize("http://app/cb")
        issued = s.post(token_url, data={**form, "grant_type": "authorization_code", "code": code})
        assert issued.status_code == 200
        tokens = issued.json()
        assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 60
        assert set(tokens) >= {"access_token", "refresh_token", "expires_in"}

        again = s.post(token_url, data={**form, "grant_type": "authorization_code", "code": code})
        assert again.status_code == 400 and again.json()["status"] == "BAD_AUTH_CODE"

        ok = s.get(url(sim, CONTACTS), headers=sim.headers(tokens["access_token"]))
        assert ok.status_code == 200
        assert "X-HubSpot-RateLimit-Max" in ok.headers
        assert "X-HubSpot-RateLimit-Daily" not in ok.headers  # HubSpot leaves daily headers out for OAuth

        sim.clock.advance(61)
        expired = s.get(url(sim, CONTACTS), headers=sim.headers(tokens["access_token"]))
        assert expired.status_code == 401
        body = expired.json()
        assert body["category"] == "EXPIRED_AUTHENTICATION"
        assert body["message"] == "The OAuth token used to make this call expired 1 second(s) ago."

        refreshed = s.post(
            token_url, data={**form, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        ).json()
        assert refreshed["refresh_token"] == tokens["refresh_token"]
        assert refreshed["access_token"] != tokens["access_token"]
        assert s.get(url(sim, CONTACTS), headers=sim.headers(refreshed["access_token"])).status_code == 200

        sim.expire_tokens()
        assert s.get(url(sim, CONTACTS), headers=sim.headers(refreshed["access_token"])).status_code == 401

        for change, status in [
            ({"client_secret": "wrong"}, "BAD_CLIENT_SECRET"),
            ({"client_id": "wrong"}, "BAD_CLIENT_ID"),
            ({"refresh_token": "unknown"}, "BAD_REFRESH_TOKEN"),
        ]:
            data = {**form, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **change}
            refused = s.post(token_url, data=data)
            assert refused.status_code == 400 and refused.json()["status"] == status
        logged = json.dumps([e.body for e in sim.stats.log])
        assert tokens["refresh_token"] not in logged and sim.client_secret not in logged


def test_oauth_authorize_redirects_with_code_and_state(sim: HubSpotSimulator) -> None:
    query = {"client_id": sim.client_id, "redirect_uri": "http://app/cb", "state": "xyz", "scope": "oauth"}
    answer = requests.get(url(sim, "/oauth/authorize"), params=query, allow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith("http://app/cb?code=") and location.endswith("&state=xyz")


# ------------------------------------------------------------------------------ CRUD
def test_create_read_update_archive(http: requests.Session, sim: HubSpotSimulator) -> None:
    sim.clock.freeze(1_767_225_600_000)  # 2026-01-01T00:00:00Z
    created = create_contact(http, sim, email="Ann@Example.com", firstname="Ann")
    assert set(created) == {"id", "properties", "createdAt", "updatedAt", "archived"}  # FACTS: record shape
    assert created["id"].isdigit() and created["archived"] is False
    assert created["createdAt"] == created["updatedAt"] == "2026-01-01T00:00:00.000Z"
    assert created["properties"]["email"] == "ann@example.com"
    assert created["properties"]["hs_object_id"] == created["id"]
    contact_id = created["id"]

    read = http.get(url(sim, f"{CONTACTS}/{contact_id}")).json()
    assert read["properties"] == {
        "createdate": "2026-01-01T00:00:00.000Z",
        "email": "ann@example.com",
        "firstname": "Ann",
        "hs_object_id": contact_id,
        "lastmodifieddate": "2026-01-01T00:00:00.000Z",
        "lastname": None,
    }
    by_email = http.get(url(sim, f"{CONTACTS}/ANN@example.com"), params={"idProperty": "email"})
    assert by_email.json()["id"] == contact_id

    sim.clock.advance(5)
    patched = http.patch(url(sim, f"{CONTACTS}/{contact_id}"), json={"properties": {"lastname": "Lee"}})
    assert patched.status_code == 200
    assert patched.json()["updatedAt"] == "2026-01-01T00:00:05.000Z"
    assert patched.json()["properties"]["lastmodifieddate"] == "2026-01-01T00:00:05.000Z"
    assert patched.json()["properties"]["lastname"] == "Lee"
    cleared = http.patch(url(sim, f"{CONTACTS}/{contact_id}"), json={"properties": {"lastname": ""}})
    assert cleared.json()["properties"].get("lastname") is None

    assert http.delete(url(sim, f"{CONTACTS}/{contact_id}")).status_code == 204
    gone = http.get(url(sim, f"{CONTACTS}/{contact_id}"))
    assert gone.status_code == 404 and gone.json()["status"] == "error"
    archived = http.get(url(sim, f"{CONTACTS}/{contact_id}"), params={"archived": "true"}).json()
    assert archived["archived"] is True and archived["archivedAt"] == "2026-01-01T00:00:05.000Z"
    assert http.delete(url(sim, f"{CONTACTS}/{contact_id}")).status_code == 204  # idempotent
    assert http.patch(url(sim, f"{CONTACTS}/{contact_id}"), json={"properties": {}}).status_code == 404
    listed = http.get(url(sim, CONTACTS), params={"archived": "true"}).json()["results"]
    assert [r["id"] for r in listed] == [contact_id]


def test_requested_properties_and_object_types(http: requests.Session, sim: HubSpotSimulator) -> None:
    contact = create_contact(http, sim, email="a@example.com", phone="123")
    read = http.get(
        url(sim, f"{CONTACTS}/{contact['id']}"), params={"properties": "phone,jobtitle,nope"}
    ).json()
    assert read["properties"] == {
        "phone": "123",
        "jobtitle": None,
        "createdate": read["createdAt"],
        "hs_object_id": contact["id"],
        "lastmodifieddate": read["updatedAt"],
    }
    company = http.post(
        url(sim, "/crm/v3/objects/companies"), json={"properties": {"name": "Acme", "domain": "acme.dk"}}
    )
    assert company.status_code == 201 and "hs_lastmodifieddate" in company.json()["properties"]
    deal = http.post(
        url(sim, "/crm/v3/objects/0-3"),  # object type ids work too
        json={
            "properties": {
                "dealname": "Gold",
                "amount": "1500.50",
                "dealstage": "closedwon",
                "pipeline": "default",
            }
        },
    ).json()
    props = http.get(url(sim, f"/crm/v3/objects/deals/{deal['id']}")).json()["properties"]
    assert set(props) == {
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    }
    assert props["amount"] == "1500.50"
    unknown = http.get(url(sim, "/crm/v3/objects/widgets"))
    assert unknown.status_code == 400


def test_custom_properties(http: requests.Session, sim: HubSpotSimulator) -> None:
    definition = {
        "name": "abohub_status",
        "label": "Abohub status",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "abohub",
        "options": [{"label": "Active", "value": "active"}, {"label": "Paused", "value": "paused"}],
    }
    created = http.post(url(sim, "/crm/v3/properties/contacts"), json=definition)
    assert created.status_code == 201 and created.json()["name"] == "abohub_status"
    again = http.post(url(sim, "/crm/v3/properties/contacts"), json=definition)
    assert again.status_code == 409 and again.json()["category"] == "OBJECT_ALREADY_EXISTS"
    mrr = {
        "name": "abohub_mrr",
        "label": "MRR",
        "type": "number",
        "fieldType": "number",
        "groupName": "abohub",
    }
    assert http.post(url(sim, "/crm/v3/properties/contacts"), json=mrr).status_code == 201
    names = {p["name"] for p in http.get(url(sim, "/crm/v3/properties/contacts")).json()["results"]}
    assert {"email", "firstname", "lastmodifieddate", "abohub_status", "abohub_mrr"} <= names
    assert http.get(url(sim, "/crm/v3/properties/contacts/abohub_mrr")).json()["type"] == "number"

    ok = create_contact(http, sim, email="b@example.com", abohub_status="active", abohub_mrr="99.00")
    assert ok["properties"]["abohub_status"] == "active"
    bad = http.post(
        url(sim, CONTACTS), json={"properties": {"email": "c@example.com", "abohub_status": "gone"}}
    )
    assert bad.status_code == 400
    [problem] = property_errors(bad)
    assert problem["error"] == "INVALID_OPTION" and problem["name"] == "abohub_status"


@pytest.mark.parametrize(
    ("props", "name", "error"),
    [
        ({"email": "not-an-email"}, "email", "INVALID_EMAIL"),
        ({"email": "d@example.com", "abohub_plan": "gold"}, "abohub_plan", "PROPERTY_DOESNT_EXIST"),
        ({"email": "d@example.com", "lastmodifieddate": "0"}, "lastmodifieddate", "READ_ONLY_VALUE"),
        ({"email": "d@example.com", "lifecyclestage": "king"}, "lifecyclestage", "INVALID_OPTION"),
    ],
)
def test_validation_errors_name_the_property(
    http: requests.Session, sim: HubSpotSimulator, props: dict[str, str], name: str, error: str
) -> None:
    response = http.post(url(sim, CONTACTS), json={"properties": props})
    assert response.status_code == 400
    [problem] = property_errors(response)
    assert problem["isValid"] is False and problem["name"] == name and problem["error"] == error
    assert sim.records("contacts") == []


def test_number_and_date_validation(http: requests.Session, sim: HubSpotSimulator) -> None:
    bad_amount = http.post(
        url(sim, "/crm/v3/objects/deals"), json={"properties": {"dealname": "x", "amount": "lots"}}
    )
    assert [p["name"] for p in property_errors(bad_amount)] == ["amount"]
    sim.define_property("deals", "abohub_start", type="date", field_type="date")
    not_midnight = http.post(
        url(sim, "/crm/v3/objects/deals"),
        json={"properties": {"dealname": "x", "abohub_start": 1_767_225_601_000}},
    )
    [problem] = property_errors(not_midnight)
    assert problem["error"] == "INVALID_DATE" and "not midnight" in problem["message"]
    ok = http.post(
        url(sim, "/crm/v3/objects/deals"),
        json={
            "properties": {
                "dealname": "x",
                "abohub_start": 1_767_225_600_000,
                "closedate": "2026-02-01T10:00:00Z",
            }
        },
    ).json()
    assert ok["properties"]["abohub_start"] == "2026-01-01"
    assert ok["properties"]["closedate"] == "2026-02-01T10:00:00.000Z"


def test_unique_email_conflict(http: requests.Session, sim: HubSpotSimulator) -> None:
    first = create_contact(http, sim, email="dup@example.com")
    clash = http.post(url(sim, CONTACTS), json={"properties": {"email": "DUP@example.com"}})
    assert clash.status_code == 409
    body = clash.json()
    assert (
        body["category"] == "CONFLICT"
        and body["message"] == f"Contact already exists. Existing ID: {first['id']}"
    )
    other = create_contact(http, sim, email="other@example.com")
    moved = http.patch(
        url(sim, f"{CONTACTS}/{other['id']}"), json={"properties": {"email": "dup@example.com"}}
    )
    assert moved.status_code == 409
    http.delete(url(sim, f"{CONTACTS}/{first['id']}"))
    assert create_contact(http, sim, email="dup@example.com")["id"] != first["id"]


# ---------------------------------------------------------------------------- paging
def test_list_paging_walks_every_record_exactly_once(http: requests.Session, sim: HubSpotSimulator) -> None:
    ids = sim.create_many("contacts", [{"email": f"p{n}@example.com"} for n in range(57)])
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": 10, **({"after": after} if after else {})}
        page = http.get(url(sim, CONTACTS), params=params).json()
        seen += [r["id"] for r in page["results"]]
        if len(seen) == 20:  # changes during the walk move no record across the cursor
            sim.edit("contacts", ids[0], {"firstname": "Changed"})
            sim.delete("contacts", ids[30])
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
        assert page["paging"]["next"]["link"].startswith(sim.base_url)
    assert seen == [i for i in ids if i != ids[30]]
    assert http.get(url(sim, CONTACTS), params={"limit": 101}).status_code == 400


# ---------------------------------------------------------------------------- search
def _search(
    http: requests.Session, sim: HubSpotSimulator, body: dict[str, Any], kind: str = "contacts"
) -> Any:
    return http.post(url(sim, f"/crm/v3/objects/{kind}/search"), json=body)


def test_search_gte_lastmodifieddate_ascending_with_equal_timestamps(
    http: requests.Session, sim: HubSpotSimulator
) -> None:
    t0 = 1_767_225_600_000
    sim.clock.freeze(t0)
    early = sim.create("contacts", {"email": "early@example.com"})
    sim.clock.set(t0 + 1000)
    tied = [sim.create("contacts", {"email": f"tie{n}@example.com"}) for n in range(3)]  # same millisecond
    late = sim.create("contacts", {"email": "late@example.com"}, at=t0 + 2000)
    sim.edit("contacts", early, {"firstname": "Edited"}, at=t0 + 1000)  # now ties with the three, lower id

    def walk(value: Any, operator: str = "GTE") -> list[tuple[str, str]]:
        out, after = [], None
        while True:
            body = {
                "filterGroups": [
                    {"filters": [{"propertyName": "lastmodifieddate", "operator": operator, "value": value}]}
                ],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": ["email"],
                "limit": 2,
                **({"after": after} if after else {}),
            }
            page = _search(http, sim, body)
            assert page.status_code == 200, page.text
            data = page.json()
            out += [(r["id"], r["properties"]["lastmodifieddate"]) for r in data["results"]]
            if "paging" not in data:
                return out
            after = data["paging"]["next"]["after"]

    got = walk(str(t0 + 1000))
    assert [i for i, _ in got] == [early, *tied, late]  # equal timestamps ordered by id
    assert {ts for _, ts in got[:4]} == {"2026-01-01T00:00:01.000Z"}
    assert walk("2026-01-01T00:00:01.000Z") == got  # an ISO value filters the same instant
    assert walk(t0 + 1000, "GT") == [(late, "2026-01-01T00:00:02.000Z")]
    total = _search(http, sim, {"filterGroups": [], "limit": 1}).json()
    assert total["total"] == 5 and total["paging"]["next"]["after"] == "1"


def test_search_filter_groups_and_operators(http: requests.Session, sim: HubSpotSimulator) -> None:
    a = sim.create("contacts", {"email": "ann@acme.dk", "firstname": "Ann", "lifecyclestage": "customer"})
    b = sim.create("contacts", {"email": "bob@acme.dk", "firstname": "Bob"})
    c = sim.create("contacts", {"email": "cy@other.dk", "firstname": "Cy", "lifecyclestage": "lead"})

    def ids(*groups: list[dict[str, Any]], **extra: Any) -> list[str]:
        body = {"filterGroups": [{"filters": g} for g in groups], **extra}
        response = _search(http, sim, body)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["results"]]

    assert ids([{"propertyName": "firstname", "operator": "EQ", "value": "ann"}]) == [a]
    assert ids([{"propertyName": "firstname", "operator": "NEQ", "value": "Ann"}]) == [b, c]
    assert ids([{"propertyName": "lifecyclestage", "operator": "HAS_PROPERTY"}]) == [a, c]
    assert ids([{"propertyName": "lifecyclestage", "operator": "NOT_HAS_PROPERTY"}]) == [b]
    assert ids([{"propertyName": "firstname", "operator": "IN", "values": ["bob", "cy"]}]) == [b, c]
    assert ids([{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@acme.dk"}]) == [a, b]
    both = ids(
        [
            {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@acme.dk"},
            {"propertyName": "firstname", "operator": "EQ", "value": "Bob"},
        ],
        [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}],
    )
    assert both == [b, c]  # (acme AND Bob) OR lead
    assert ids(sorts=[{"propertyName": "firstname", "direction": "DESCENDING"}]) == [c, b, a]
    assert ids(query="acme") == [a, b]

    deals = [sim.create("deals", {"dealname": f"d{n}", "amount": str(n * 50)}) for n in range(1, 5)]
    cheap = _search(
        http,
        sim,
        {"filterGroups": [{"filters": [{"propertyName": "amount", "operator": "LT", "value": "120"}]}]},
        "deals",
    ).json()
    assert [r["id"] for r in cheap["results"]] == deals[:2]  # numeric, not text, comparison
    between = _search(
        http,
        sim,
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "amount", "operator": "BETWEEN", "value": 100, "highValue": 150}
                    ]
                }
            ]
        },
        "deals",
    ).json()
    assert [r["id"] for r in between["results"]] == deals[1:3]


def test_search_refuses_to_page_past_10000(http: requests.Session, sim: HubSpotSimulator) -> None:
    refused = _search(http, sim, {"after": "10000"})
    assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
    assert _search(http, sim, {"after": "9999"}).status_code == 200


def test_search_limits_and_the_results_cap(http: requests.Session, receiver: Receiver) -> None:
    with HubSpotSimulator(search_rate_limit=1000, search_cap=25) as sim:
        http.headers.update(sim.headers())
        sim.create_many("contacts", [{"email": f"s{n}@example.com"} for n in range(40)])
        assert _search(http, sim, {"limit": 201}).status_code == 400
        too_many = {
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6
        }
        assert _search(http, sim, too_many).status_code == 400
        unknown = {"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]}
        assert _search(http, sim, unknown).json()["category"] == "VALIDATION_ERROR"
        got, after = 0, "0"
        while True:
            page = _search(http, sim, {"limit": 10, "after": after})
            if page.status_code == 400:
                assert "cannot page past 25" in page.json()["message"]
                break
            data = page.json()
            assert data["total"] == 40
            got += len(data["results"])
            after = data["paging"]["next"]["after"]
        assert got == 25  # the cap, not the total


def test_search_index_lags_behind_writes(http: requests.Session, receiver: Receiver) -> None:
    with HubSpotSimulator(search_lag=0.5) as sim:
        http.headers.update(sim.headers())
        contact = create_contact(http, sim, email="lag@example.com", firstname="Old")
        assert _search(http, sim, {}).json()["total"] == 0
        time.sleep(0.55)
        http.patch(url(sim, f"{CONTACTS}/{contact['id']}"), json={"properties": {"firstname": "New"}})
        seen = _search(http, sim, {"properties": ["firstname"]}).json()["results"]
        assert [r["properties"]["firstname"] for r in seen] == ["Old"]
        assert http.get(url(sim, f"{CONTACTS}/{contact['id']}")).json()["properties"]["firstname"] == "New"
        time.sleep(0.55)
        seen = _search(http, sim, {"properties": ["firstname"]}).json()["results"]
        assert [r["properties"]["firstname"] for r in seen] == ["New"]


# ----------------------------------------------------------------------------- batch
def test_batch_create_and_read_with_missing_ids(http: requests.Session, sim: HubSpotSimulator) -> None:
    inputs = [{"properties": {"email": f"b{n}@example.com"}, "objectWriteTraceId": f"t{n}"} for n in range(3)]
    created = http.post(url(sim, f"{CONTACTS}/batch/create"), json={"inputs": inputs})
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "COMPLETE" and {"startedAt", "completedAt"} <= set(body)
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["t0", "t1", "t2"]
    ids = [r["id"] for r in body["results"]]

    read = http.post(
        url(sim, f"{CONTACTS}/batch/read"), json={"inputs": [{"id": i} for i in ids], "properties": ["email"]}
    )
    assert read.status_code == 200 and [r["properties"]["email"] for r in read.json()["results"]] == [
        "b0@example.com",
        "b1@example.com",
        "b2@example.com",
    ]
    partial = http.post(url(sim, f"{CONTACTS}/batch/read"), json={"inputs": [{"id": ids[0]}, {"id": "999"}]})
    assert partial.status_code == 207
    body = partial.json()
    assert [r["id"] for r in body["results"]] == [ids[0]] and body["numErrors"] == 1
    [error] = body["errors"]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"] == {"ids": ["999"]}
    by_email = http.post(
        url(sim, f"{CONTACTS}/batch/read"), json={"idProperty": "email", "inputs": [{"id": "b1@example.com"}]}
    )
    assert by_email.json()["results"][0]["id"] == ids[1]


@pytest.mark.parametrize("action", ["read", "create", "update", "upsert", "archive"])
def test_batch_takes_at_most_100_inputs(http: requests.Session, sim: HubSpotSimulator, action: str) -> None:
    inputs = [
        {"id": f"x{n}@example.com", "idProperty": "email", "properties": {"email": f"x{n}@example.com"}}
        for n in range(101)
    ]
    refused = http.post(url(sim, f"{CONTACTS}/batch/{action}"), json={"inputs": inputs})
    assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
    assert "100" in refused.json()["message"]
    assert sim.records("contacts") == []


def test_batch_update_partial_failure_is_207(http: requests.Session, sim: HubSpotSimulator) -> None:
    a = sim.create("contacts", {"email": "u1@example.com"})
    b = sim.create("contacts", {"email": "u2@example.com"})
    response = http.post(
        url(sim, f"{CONTACTS}/batch/update"),
        json={
            "inputs": [
                {"id": a, "properties": {"firstname": "A"}},
                {"id": "424242", "properties": {"firstname": "X"}},
                {"id": b, "properties": {"firstname": "B"}},
            ]
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == [a, b]
    assert body["errors"][0]["context"]["ids"] == ["424242"]
    assert sim.get("contacts", a)["properties"]["firstname"] == "A"  # type: ignore[index]
    duplicate = http.post(
        url(sim, f"{CONTACTS}/batch/update"), json={"inputs": [{"id": a, "properties": {}}] * 2}
    )
    assert duplicate.status_code == 400 and "Duplicate IDs" in duplicate.json()["message"]


def test_batch_validation_fails_the_whole_batch(http: requests.Session, sim: HubSpotSimulator) -> None:
    inputs = [{"properties": {"email": "ok@example.com"}}, {"properties": {"email": "broken"}}]
    refused = http.post(url(sim, f"{CONTACTS}/batch/create"), json={"inputs": inputs})
    assert refused.status_code == 400 and property_errors(refused)[0]["name"] == "email"
    existing = sim.create("contacts", {"email": "taken@example.com"})
    clash = http.post(
        url(sim, f"{CONTACTS}/batch/create"),
        json={
            "inputs": [
                {"properties": {"email": "new@example.com"}},
                {"properties": {"email": "taken@example.com"}},
            ]
        },
    )
    assert (
        clash.status_code == 409
        and clash.json()["message"] == f"Contact already exists. Existing ID: {existing}"
    )
    assert [r["properties"]["email"] for r in sim.records("contacts")] == ["taken@example.com"]


def test_batch_upsert_by_unique_property(http: requests.Session, sim: HubSpotSimulator) -> None:
    old = sim.create("contacts", {"email": "keep@example.com", "firstname": "Old"})
    response = http.post(
        url(sim, f"{CONTACTS}/batch/upsert"),
        json={
            "inputs": [
                {"idProperty": "email", "id": "KEEP@example.com", "properties": {"firstname": "New"}},
                {"idProperty": "email", "id": "fresh@example.com", "properties": {"firstname": "Fresh"}},
            ]
        },
    )
    assert response.status_code == 200
    results = {r["properties"]["email"]: r for r in response.json()["results"]}
    assert results["keep@example.com"]["id"] == old and results["keep@example.com"]["new"] is False
    assert results["fresh@example.com"]["new"] is True
    assert sim.get("contacts", old)["properties"]["firstname"] == "New"  # type: ignore[index]
    assert len(sim.records("contacts")) == 2

    # companies upsert on a custom unique property; a non-unique one is refused like HubSpot does
    sim.define_property("companies", "abohub_id", unique=True)
    upsert = {"inputs": [{"idProperty": "abohub_id", "id": "cus_1", "properties": {"name": "Acme"}}]}
    first = http.post(url(sim, "/crm/v3/objects/companies/batch/upsert"), json=upsert).json()
    second = http.post(url(sim, "/crm/v3/objects/companies/batch/upsert"), json=upsert).json()
    assert first["results"][0]["id"] == second["results"][0]["id"] and second["results"][0]["new"] is False
    by_name = {"inputs": [{"idProperty": "name", "id": "Acme", "properties": {}}]}
    refused = http.post(url(sim, "/crm/v3/objects/companies/batch/upsert"), json=by_name)
    assert refused.status_code == 400 and "non-unique" in refused.json()["message"]


def test_batch_archive(http: requests.Session, sim: HubSpotSimulator) -> None:
    ids = sim.create_many("contacts", [{"email": f"arc{n}@example.com"} for n in range(3)])
    response = http.post(
        url(sim, f"{CONTACTS}/batch/archive"), json={"inputs": [{"id": ids[0]}, {"id": "1"}]}
    )
    assert response.status_code == 204
    assert [r["id"] for r in sim.records("contacts")] == ids[1:]


# ------------------------------------------------------------------------ rate limits
def test_rate_limit_429_with_headers_and_recovery(receiver: Receiver) -> None:
    with (
        HubSpotSimulator(rate_limit=5, rate_limit_interval=1.0, retry_after_header=True) as sim,
        requests.Session() as s,
    ):
        s.headers.update(sim.headers())
        remaining = []
        for n in range(5):
            answer = s.post(url(sim, CONTACTS), json={"properties": {"email": f"r{n}@example.com"}})
            assert answer.status_code == 201
            assert answer.headers["X-HubSpot-RateLimit-Max"] == "5"
            assert answer.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
            remaining.append(int(answer.headers["X-HubSpot-RateLimit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        refused = s.post(url(sim, CONTACTS), json={"properties": {"email": "r5@example.com"}})
        assert refused.status_code == 429
        body = refused.json()
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["status"] == "error" and body["correlationId"]
        assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
        assert refused.headers["Retry-After"] == "1"  # only when asked: HubSpot itself sends none
        assert "Retry-After" not in answer.headers
        assert int(refused.headers["X-HubSpot-RateLimit-Daily-Remaining"]) == 500_000 - 5
        assert len(sim.records("contacts")) == 5  # the refused write did nothing
        time.sleep(1.05)
        assert s.post(url(sim, CONTACTS), json={"properties": {"email": "r5@example.com"}}).status_code == 201


def test_search_has_its_own_secondly_limit(receiver: Receiver) -> None:
    with HubSpotSimulator(search_rate_limit=2, search_rate_interval=0.5) as sim, requests.Session() as s:
        s.headers.update(sim.headers())
        statuses = [_search(s, sim, {}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert s.post(url(sim, f"{CONTACTS}/search"), json={}).json()["policyName"] == "SECONDLY"
        assert s.get(url(sim, CONTACTS)).status_code == 200  # other endpoints unaffected
        time.sleep(0.55)
        assert _search(s, sim, {}).status_code == 200


# ---------------------------------------------------------------------------- faults
@pytest.mark.parametrize(("kind", "status"), [("http_500", 500), ("http_502", 502), ("http_503", 503)])
def test_server_error_faults(http: requests.Session, sim: HubSpotSimulator, kind: str, status: int) -> None:
    sim.faults.add(kind, count=2, path=r"/batch/", method="POST")
    assert http.get(url(sim, CONTACTS)).status_code == 200  # other paths unaffected
    body = {"inputs": [{"properties": {"email": "f@example.com"}}]}
    first = http.post(url(sim, f"{CONTACTS}/batch/create"), json=body)
    second = http.post(url(sim, f"{CONTACTS}/batch/create"), json=body)
    assert first.status_code == second.status_code == status
    if kind == "http_502":
        assert first.headers["Content-Type"].startswith("text/html")
    else:
        assert first.json()["status"] == "error"
    assert sim.records("contacts") == []  # no effect
    assert http.post(url(sim, f"{CONTACTS}/batch/create"), json=body).status_code == 201
    assert sim.stats.count(status=status) == 2


def test_a_missing_scope_refuses_the_matching_writes_with_hubspots_403(
    http: requests.Session, sim: HubSpotSimulator
) -> None:
    sim.faults.add("missing_scopes", count=None, path=r"/contacts/batch/(create|update|upsert)")
    body = {"inputs": [{"properties": {"email": "f@example.com"}}]}
    refused = http.post(url(sim, f"{CONTACTS}/batch/create"), json=body)
    assert refused.status_code == 403
    answer = refused.json()
    assert answer["category"] == "MISSING_SCOPES"
    assert answer["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]
    assert sim.records("contacts") == []
    assert http.get(url(sim, CONTACTS)).status_code == 200  # reads keep working
    sim.faults.clear()  # the scope is given back
    assert http.post(url(sim, f"{CONTACTS}/batch/create"), json=body).status_code == 201


def test_timeout_fault_is_ambiguous_by_default(http: requests.Session, sim: HubSpotSimulator) -> None:
    sim.faults.add("timeout", seconds=0.3, method="POST")
    with pytest.raises(requests.ReadTimeout):
        http.post(url(sim, CONTACTS), json={"properties": {"email": "slow@example.com"}}, timeout=0.1)
    deadline = time.monotonic() + 3
    while not sim.records("contacts") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r["properties"]["email"] for r in sim.records("contacts")] == ["slow@example.com"]  # it happened
    sim.faults.add("timeout", seconds=0.05, apply=False)
    lost = http.post(url(sim, CONTACTS), json={"properties": {"email": "lost@example.com"}}, timeout=2)
    assert lost.status_code == 504 and len(sim.records("contacts")) == 1


def test_rate_limit_storm(http: requests.Session, sim: HubSpotSimulator) -> None:
    sim.faults.add("rate_limit_storm", count=3)
    answers = [http.get(url(sim, CONTACTS)) for _ in range(4)]
    assert [a.status_code for a in answers] == [429, 429, 429, 200]
    assert answers[0].json()["errorType"] == "RATE_LIMIT"
    assert answers[0].headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_malformed_fault(http: requests.Session, sim: HubSpotSimulator) -> None:
    sim.faults.add("malformed")
    garbled = http.post(url(sim, CONTACTS), json={"properties": {"email": "m1@example.com"}})
    assert garbled.status_code == 200
    with pytest.raises(ValueError):
        garbled.json()
    assert sim.records("contacts") == []
    sim.faults.add("malformed", apply=True)
    garbled = http.post(url(sim, CONTACTS), json={"properties": {"email": "m2@example.com"}})
    with pytest.raises(ValueError):
        garbled.json()
    assert len(sim.records("contacts")) == 1


def test_faults_skip_unlimited_and_clear(http: requests.Session, sim: HubSpotSimulator) -> None:
    sim.faults.add("http_503", count=None, skip=1)
    assert http.get(url(sim, CONTACTS)).status_code == 200
    assert [http.get(url(sim, CONTACTS)).status_code for _ in range(3)] == [503, 503, 503]
    sim.faults.clear()
    assert http.get(url(sim, CONTACTS)).status_code == 200
    with pytest.raises(ValueError):
        sim.faults.add("meteor")


# -------------------------------------------------------------------------- webhooks
def test_webhook_delivery_is_signed_v3(
    sim: HubSpotSimulator, receiver: Receiver, http: requests.Session
) -> None:
    contact_id = sim.create("contacts", {"email": "hook@example.com"})
    sim.edit("contacts", contact_id, {"firstname": "Hooky"})
    api = create_contact(http, sim, email="api@example.com")
    http.delete(url(sim, f"{CONTACTS}/{api['id']}"))
    deliveries = sim.flush_webhooks()
    assert deliveries and all(d.ok for d in deliveries)

    [post] = receiver.received
    headers = post["headers"]
    assert post["url"] == receiver.url and headers["Content-Type"] == "application/json"
    assert verify_v3(
        sim.client_secret,
        "POST",
        post["url"],
        post["body"],
        headers["X-Hubspot-Request-Timestamp"],
        headers["X-Hubspot-Signature-V3"],
        int(time.time() * 1000),
    )
    assert not verify_v3(
        "other-secret",
        "POST",
        post["url"],
        post["body"],
        headers["X-Hubspot-Request-Timestamp"],
        headers["X-Hubspot-Signature-V3"],
        int(time.time() * 1000),
    )
    assert (
        headers["X-Hubspot-Signature"]
        == hashlib.sha256(sim.client_secret.encode() + post["body"]).hexdigest()
    )

    sim.webhooks.timestamp_skew_ms = -301_000  # a sender clock 5 minutes behind: receivers must refuse
    sim.edit("contacts", contact_id, {"firstname": "Stale"})
    [stale] = sim.flush_webhooks()
    assert not verify_v3(
        sim.client_secret,
        "POST",
        receiver.url,
        stale.body,
        stale.headers["X-HubSpot-Request-Timestamp"],
        stale.headers["X-HubSpot-Signature-v3"],
        int(time.time() * 1000),
    )

    events = json.loads(post["body"])
    kinds = [(e["subscriptionType"], e.get("propertyName"), e["changeSource"]) for e in events]
    assert kinds == [
        ("contact.creation", None, "CRM_UI"),
        ("contact.propertyChange", "email", "CRM_UI"),
        ("contact.propertyChange", "firstname", "CRM_UI"),
        ("contact.creation", None, "INTEGRATION"),
        ("contact.propertyChange", "email", "INTEGRATION"),
        ("contact.deletion", None, "INTEGRATION"),
    ]
    change = events[2]
    assert change["objectId"] == int(contact_id) and change["propertyValue"] == "Hooky"
    for event in events:  # FACTS: the fields of an event
        assert {
            "eventId",
            "subscriptionId",
            "portalId",
            "appId",
            "occurredAt",
            "subscriptionType",
            "attemptNumber",
            "objectId",
            "changeSource",
        } <= set(event)
        assert (
            event["portalId"] == sim.portal_id
            and event["appId"] == sim.app_id
            and event["attemptNumber"] == 0
        )
    assert events[3]["sourceId"] == str(sim.app_id)
    assert len({e["eventId"] for e in events}) == len(events)


def test_webhooks_batch_at_most_100(sim: HubSpotSimulator, receiver: Receiver) -> None:
    sim.create_many(
        "contacts", [{"email": f"w{n}@example.com", "firstname": "W"} for n in range(80)], webhooks=True
    )
    sim.flush_webhooks()  # 80 creations + 160 property changes
    sizes = [len(json.loads(r["body"])) for r in receiver.received]
    assert sizes == [100, 100, 40]
    assert len({e["eventId"] for e in receiver.events()}) == 240


def test_webhooks_can_be_delivered_twice(receiver: Receiver) -> None:
    with HubSpotSimulator(webhook_urls=[receiver.url], webhook_mode="manual", webhook_duplicates=True) as sim:
        sim.create("companies", {"name": "Twice"})
        sim.flush_webhooks()
    first, second = (json.loads(r["body"]) for r in receiver.received)
    assert [e["eventId"] for e in first] == [e["eventId"] for e in second]
    assert [e["subscriptionType"] for e in first] == ["company.creation", "company.propertyChange"]


def test_webhook_retries_count_attempts(receiver: Receiver) -> None:
    receiver.fail_first = 2
    with HubSpotSimulator(
        webhook_urls=[receiver.url], webhook_mode="manual", webhook_retry_delays=(0.01, 0.01)
    ) as sim:
        sim.create("deals", {"dealname": "Retry"}, webhooks=True)
        deliveries = sim.flush_webhooks()
        assert [d.status for d in deliveries] == [500, 500, 204]
        attempts = [json.loads(r["body"])[0]["attemptNumber"] for r in receiver.received]
        assert attempts == [0, 1, 2]
        receiver.fail_first = 10
        sim.edit("deals", sim.records("deals")[0]["id"], {"amount": "10"})
        assert [d.ok for d in sim.flush_webhooks()] == [False, False, False]
        assert len(sim.webhooks.given_up) == 1


def test_webhooks_deliver_in_the_background_and_can_be_off(receiver: Receiver) -> None:
    with HubSpotSimulator(webhook_urls=[receiver.url]) as sim:
        sim.create("contacts", {"email": "bg@example.com"})
        deadline = time.monotonic() + 3
        while len(receiver.events()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [e["subscriptionType"] for e in receiver.events()] == [
            "contact.creation",
            "contact.propertyChange",
        ]
    with HubSpotSimulator(webhook_urls=[receiver.url], webhook_mode="off") as sim:
        sim.create("contacts", {"email": "quiet@example.com"})
        assert sim.flush_webhooks() == [] and len(sim.webhooks.events) == 2
    assert len(receiver.received) == 1


def test_no_event_when_nothing_changes(
    http: requests.Session, sim: HubSpotSimulator, receiver: Receiver
) -> None:
    contact = create_contact(http, sim, email="same@example.com", firstname="Same")
    sim.flush_webhooks()
    before = len(receiver.events())
    again = http.patch(url(sim, f"{CONTACTS}/{contact['id']}"), json={"properties": {"firstname": "Same"}})
    assert again.json()["updatedAt"] == contact["updatedAt"]  # nothing changed, nothing moved
    sim.flush_webhooks()
    assert len(receiver.events()) == before
    assert sim.writes("contacts", contact["id"]) == 2  # but both writes are counted


# ---------------------------------------------------------------------- conformance
# HubSpot vectors from vendor-specs/test-vectors/webhook-signature-vectors.json (v1/v2 vendor-published,
# v3 self-computed from the documented algorithm).
SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
V1_BODY = (
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":'
    '"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
)
V3_BODY = '[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]'


def test_signers_reproduce_the_vectors() -> None:
    assert sign_v1(SECRET, V1_BODY) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    assert (
        sign_v2(SECRET, "GET", "https://www.example.com/webhook_uri", "")
        == "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )
    v3 = sign_v3(SECRET, "POST", "https://example.com/webhooks/hubspot", V3_BODY, "1614265330000")
    assert v3 == "VghEMklzW3P0sub2SHKEd+gkPtWNBOCh47Q+0RsXsS4="
    assert verify_v3(
        SECRET,
        "POST",
        "https://example.com/webhooks/hubspot",
        V3_BODY.encode(),
        "1614265330000",
        v3,
        1614265330000 + 299_000,
    )
    assert not verify_v3(
        SECRET,
        "POST",
        "https://example.com/webhooks/hubspot",
        V3_BODY.encode(),
        "1614265330000",
        v3,
        1614265330000 + 301_000,
    )  # older than 5 minutes


@pytest.mark.skipif(not SHARED_VECTORS.exists(), reason="shared vendor-specs not present")
def test_signers_match_the_shared_vector_file() -> None:
    vectors = [
        v for v in json.loads(SHARED_VECTORS.read_text())["vectors"] if v["scheme"].startswith("HubSpot")
    ]
    assert len(vectors) == 3
    for v in vectors:
        headers = v["headers"]
        if v["scheme"].endswith("v1"):
            assert sign_v1(v["client_secret"], v["body"]) == headers["X-HubSpot-Signature"]
        elif v["scheme"].endswith("v2"):
            assert (
                sign_v2(v["client_secret"], v["method"], v["uri"], v["body"])
                == headers["X-HubSpot-Signature"]
            )
        else:
            got = sign_v3(
                v["client_secret"], v["method"], v["uri"], v["body"], headers["X-HubSpot-Request-Timestamp"]
            )
            assert got == headers["X-HubSpot-Signature-v3"]


# --------------------------------------------------------------------- observability
def test_counters_and_a_log_without_tokens(http: requests.Session, sim: HubSpotSimulator) -> None:
    contact = create_contact(http, sim, email="obs@example.com")
    http.patch(url(sim, f"{CONTACTS}/{contact['id']}"), json={"properties": {"firstname": "O"}})
    http.get(url(sim, f"{CONTACTS}/{contact['id']}"))
    http.get(url(sim, f"{CONTACTS}/999"))
    assert sim.stats.requests[("PATCH", "/crm/v3/objects/{object_type}/{object_id}", 200)] == 1
    assert sim.stats.count("GET", "/crm/v3/objects/{object_type}/{object_id}") == 2
    assert sim.stats.count(status=404) == 1
    assert sim.writes("contacts", contact["id"]) == 2 and sim.writes("companies") == 0
    assert [e.principal for e in sim.stats.log] == ["private_app"] * 4
    assert sim.token not in repr(sim.stats.log)
    sim.reset_stats()
    assert sim.stats.count() == 0 and sim.writes() == 0
    sim.reset()
    assert sim.records("contacts") == []


def test_runs_standalone() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.hubspot.simulator", "--port", str(port), "--seed", "3"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        config = json.loads(process.stdout.readline())
        assert config["base_url"] == f"http://127.0.0.1:{port}"
        answer = requests.get(
            config["base_url"] + CONTACTS, headers={"Authorization": f"Bearer {config['private_app_token']}"}
        )
        assert answer.status_code == 200 and len(answer.json()["results"]) == 3
    finally:
        process.terminate()
        process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
