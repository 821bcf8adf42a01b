"""The HubSpot connector (CRM): contacts (or companies) ↔ customers, deals ↔ subscriptions.

What it relies on (see the vendor facts):

* writes are batch upserts of up to 100 records keyed on the custom unique
  property ``abohub_id`` (HubSpot has no idempotency header; an upsert key
  makes a retried write land on the same record);
* incremental reads use the search API on the last-modified property, sorted
  ascending. The cursor keeps the last timestamp *and* the ids already seen at
  exactly that timestamp, and the next read asks for ``GTE`` that timestamp, so
  records sharing a timestamp across a page or poll boundary are never dropped
  and never read twice; a record changed while a sync runs gets a newer
  timestamp and is read next time. Past HubSpot's 10,000-results cap a read
  restarts from the last timestamp it reached;
* v3 webhook signatures: base64(HMAC-SHA256(app secret, method + URI + body +
  timestamp)), rejected when older than five minutes;
* private-app tokens, or OAuth with refresh (refreshed tokens go back to the
  hub through ``context.save_credentials`` to be stored encrypted);
* rate limits: a shared token bucket at the private-app burst (190 per 10 s)
  and a separate one for search (4 per second);
* associations (v4): a deal is related to its contact or company with HubSpot's
  unlabeled association type (deal→contact 3, deal→company 341) through
  ``batch/create``, which answers 207 naming the inputs whose records do not exist;
  associating a pair that is already associated changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connectors.base import (
    Connector,
    ConnectorContext,
    Direction,
    Kind,
    ObjectType,
    Page,
    RemoteRecord,
    WebhookEvent,
    WebhookRejected,
    WriteItem,
    WriteResult,
)
from connectors.errors import ConnectorError, FatalError, MalformedResponse, NotFound, RetriableError
from connectors.http import HttpClient, HttpPolicy
from connectors.ratelimit import make_bucket, window_bucket

API = "https://api.hubapi.com"
UPSERT_KEY = "abohub_id"
BATCH_LIMIT = 100
SEARCH_LIMIT = 200  # the most one search request returns
SEARCH_CAP = 10_000
SIGNATURE_WINDOW = timedelta(minutes=5)
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
ASSOCIATION_BATCH = 1_000  # batch read's documented cap; create's (2,000) is only a third-party figure
ASSOCIATION_READ_PAGE = 500
# HubSpot's unlabeled (HUBSPOT_DEFINED) association type per direction.
ASSOCIATION_TYPES = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
}
SUBSCRIPTION_TYPES = {"contact": "contacts", "company": "companies", "deal": "deals"}
ACTIONS = {"creation": "created", "propertyChange": "updated", "deletion": "deleted", "restore": "updated"}

# Custom properties the connector creates on setup: (object, name, label, type, field type).
CUSTOM_PROPERTIES = [
    *[(obj, UPSERT_KEY, "Abohub id", "string", "text") for obj in ("contacts", "companies", "deals")],
    ("contacts", "abohub_status", "Abohub status", "string", "text"),
    ("contacts", "abohub_plan", "Abohub plan", "string", "text"),
    ("contacts", "abohub_mrr", "Abohub MRR", "number", "number"),
    ("contacts", "abohub_ltv", "Abohub LTV (net revenue to date)", "number", "number"),
    ("contacts", "abohub_currency", "Abohub currency", "string", "text"),
    ("contacts", "abohub_vat_number", "VAT number", "string", "text"),
    ("companies", "abohub_status", "Abohub status", "string", "text"),
    ("companies", "abohub_plan", "Abohub plan", "string", "text"),
    ("companies", "abohub_mrr", "Abohub MRR", "number", "number"),
    ("companies", "abohub_ltv", "Abohub LTV (net revenue to date)", "number", "number"),
    ("companies", "abohub_currency", "Abohub currency", "string", "text"),
    ("companies", "abohub_vat_number", "VAT number", "string", "text"),
    ("deals", "abohub_status", "Abohub status", "string", "text"),
    ("deals", "abohub_mrr", "Abohub MRR", "number", "number"),
]
PROPERTY_GROUPS = {
    "contacts": "contactinformation",
    "companies": "companyinformation",
    "deals": "dealinformation",
}


class HubSpotConfig(Schema):
    base_url = fields.Url(load_default=API, require_tld=False)
    access_token = fields.String(load_default=None, allow_none=True, metadata={"secret": True})
    client_id = fields.String(load_default=None, allow_none=True)
    client_secret = fields.String(
        required=True,
        metadata={"secret": True, "description": "The app's client secret: signs webhooks, refreshes tokens"},
    )
    refresh_token = fields.String(load_default=None, allow_none=True, metadata={"secret": True})
    access_token_expires_at = fields.Integer(load_default=None, allow_none=True)
    requests_per_ten_seconds = fields.Integer(load_default=190, validate=validate.Range(min=1, max=10_000))
    searches_per_second = fields.Integer(load_default=4, validate=validate.Range(min=1, max=100))

    @validates_schema
    def some_credential(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("access_token") and not data.get("refresh_token"):
            raise ValidationError("give a private-app access_token or an OAuth refresh_token", "access_token")
        if data.get("refresh_token") and not data.get("client_id"):
            raise ValidationError("OAuth needs the app's client_id", "client_id")


class _HubSpotAuth:
    """A private-app token, or OAuth tokens refreshed through ``/oauth/v1/token``."""

    def __init__(self, connector: HubSpotConnector) -> None:
        self.connector = connector

    def headers(self) -> Mapping[str, str]:
        config = self.connector.config
        expires = config.get("access_token_expires_at")
        if config.get("refresh_token") and (
            not config.get("access_token")
            or (expires is not None and expires <= datetime.now(UTC).timestamp() + 60)
        ):
            self.refresh()
        return {"Authorization": f"Bearer {config['access_token']}"}

    def refresh(self) -> bool:
        config = self.connector.config
        if not config.get("refresh_token"):
            return False
        # A plain session: the token endpoint must not go through the auth hook it serves.
        response = requests.post(
            f"{config['base_url'].rstrip('/')}/oauth/v1/token",
            data={
                "grant_type": "refresh_token",
                "client_id": config["client_id"],
                "client_secret": config["client_secret"],
                "refresh_token": config["refresh_token"],
            },
            timeout=(5, self.connector.context.timeout_seconds),
        )
        if response.status_code != 200:
            return False
        body = response.json()
        updates = {
            "access_token": body["access_token"],
            "refresh_token": body.get("refresh_token", config["refresh_token"]),
            "access_token_expires_at": int(datetime.now(UTC).timestamp()) + int(body.get("expires_in", 1800)),
        }
        config.update(updates)
        self.connector.http.add_secret(updates["access_token"], updates["refresh_token"])
        if self.connector.context.save_credentials is not None:
            self.connector.context.save_credentials(updates)
        return True


class HubSpotConnector(Connector):
    name = "hubspot"
    title = "HubSpot"
    kind = Kind.CRM
    config_schema = HubSpotConfig
    capabilities = frozenset({"webhooks", "batch_upsert", "search", "oauth", "associations"})
    # Contacts come first: they are the default for customers; companies are the B2B alternative.
    object_types: ClassVar[tuple[ObjectType, ...]] = (
        ObjectType("contacts", "customer", frozenset({Direction.BOTH}), keys=("email", UPSERT_KEY)),
        ObjectType(
            "companies", "customer", frozenset({Direction.BOTH}), keys=("abohub_vat_number", UPSERT_KEY)
        ),
        ObjectType("deals", "subscription", frozenset({Direction.PUSH}), keys=(UPSERT_KEY,)),
    )
    properties: ClassVar[dict[str, list[str]]] = {
        "contacts": [
            "email",
            "firstname",
            "lastname",
            "country",
            "lastmodifieddate",
            UPSERT_KEY,
            "abohub_status",
            "abohub_plan",
            "abohub_mrr",
            "abohub_ltv",
            "abohub_currency",
            "abohub_vat_number",
        ],
        "companies": [
            "name",
            "domain",
            "country",
            "hs_lastmodifieddate",
            UPSERT_KEY,
            "abohub_status",
            "abohub_plan",
            "abohub_mrr",
            "abohub_ltv",
            "abohub_currency",
            "abohub_vat_number",
        ],
        "deals": [
            "dealname",
            "amount",
            "dealstage",
            "pipeline",
            "deal_currency_code",
            "hs_lastmodifieddate",
            UPSERT_KEY,
            "abohub_status",
            "abohub_mrr",
        ],
    }

    def __init__(self, config: Mapping[str, Any], context: ConnectorContext) -> None:
        super().__init__(self.config_schema().load(dict(config)), context)
        base = self.config["base_url"].rstrip("/")
        secrets = [v for k, v in self.config.items() if k in self.secret_fields() and v]
        bucket_name = f"hubspot:{hashlib.sha256(base.encode() + secrets[0].encode()).hexdigest()[:16]}"
        limit = self.config["requests_per_ten_seconds"]
        self.bucket = window_bucket(bucket_name, limit, window_seconds=10.0, redis_client=context.redis_url)
        self.search_bucket = make_bucket(
            bucket_name + ":search",
            self.config["searches_per_second"],
            self.config["searches_per_second"],
            context.redis_url,
        )
        policy = HttpPolicy(read_timeout=context.timeout_seconds)
        self.http = HttpClient(
            base, auth=_HubSpotAuth(self), bucket=self.bucket, policy=policy, secrets=secrets, name="hubspot"
        )
        self._properties_ensured = False
        self.search_http = HttpClient(
            base,
            auth=_HubSpotAuth(self),
            bucket=self.search_bucket,
            policy=policy,
            secrets=secrets,
            name="hubspot-search",
        )

    # --- setup and health --------------------------------------------------------------------

    def check(self) -> None:
        self.http.get_json("/crm/v3/objects/contacts", params={"limit": 1})

    def ensure_properties(self) -> list[str]:
        """Create the custom properties Abohub writes to; returns the ones created."""
        created = []
        existing: dict[str, set[str]] = {}
        for object_type, name, label, kind, field_type in CUSTOM_PROPERTIES:
            if object_type not in existing:
                answer = self.http.get_json(f"/crm/v3/properties/{object_type}")
                existing[object_type] = {p["name"] for p in (answer or {}).get("results", [])}
            if name in existing[object_type]:
                continue
            body = {
                "name": name,
                "label": label,
                "type": kind,
                "fieldType": field_type,
                "groupName": PROPERTY_GROUPS[object_type],
            }
            if name == UPSERT_KEY:
                body["hasUniqueValue"] = True
            self.http.post_json(f"/crm/v3/properties/{object_type}", body)
            created.append(f"{object_type}.{name}")
        return created

    # --- reading -----------------------------------------------------------------------------

    def read(self, object_type: str, remote_id: str) -> RemoteRecord | None:
        try:
            body = self.http.get_json(
                f"/crm/v3/objects/{object_type}/{remote_id}",
                params={"properties": ",".join(self.properties[object_type])},
            )
        except NotFound:
            return None
        return self._record(object_type, body)

    def read_many(self, object_type: str, remote_ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Up to 100 records per ``batch/read`` request; ids HubSpot does not find are left out."""
        wanted = list(dict.fromkeys(str(remote_id) for remote_id in remote_ids))
        found: dict[str, RemoteRecord] = {}
        for start in range(0, len(wanted), BATCH_LIMIT):
            body = {
                "properties": self.properties[object_type],
                "inputs": [{"id": remote_id} for remote_id in wanted[start : start + BATCH_LIMIT]],
            }
            # 207 with "errors" names the missing ids: absent from the answer is all we need to know.
            answer = self.http.post_json(f"/crm/v3/objects/{object_type}/batch/read", body) or {}
            for raw in answer.get("results", []):
                record = self._record(object_type, raw)
                if not record.archived:
                    found[record.id] = record
        return found

    def read_changes(self, object_type: str, cursor: str | None, limit: int = SEARCH_LIMIT) -> Page:
        modified = MODIFIED[object_type]
        since, seen = _parse_cursor(cursor)
        body: dict[str, Any] = {
            "filterGroups": [
                {"filters": [{"propertyName": modified, "operator": "GTE", "value": str(since)}]}
            ],
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": self.properties[object_type],
            "limit": min(limit, SEARCH_LIMIT),
        }
        records: list[RemoteRecord] = []
        after: str | None = None
        last_ts, last_ids = since, set(seen)
        fetched = 0
        while len(records) < limit:
            if after is not None:
                body["after"] = after
            page = self.search_http.post_json(f"/crm/v3/objects/{object_type}/search", body) or {}
            results = page.get("results", [])
            fetched += len(results)
            for raw in results:
                record = self._record(object_type, raw)
                ts = _millis(raw.get("properties", {}).get(modified)) or since
                if ts < last_ts or (ts == last_ts and record.id in last_ids):
                    continue  # already read at the boundary of an earlier page or poll
                if ts > last_ts:
                    last_ts, last_ids = ts, set()
                last_ids.add(record.id)
                records.append(record)
            after = (page.get("paging") or {}).get("next", {}).get("after")
            if not after or not results:
                break
            if fetched >= SEARCH_CAP - SEARCH_LIMIT:
                # The search API stops at 10,000 results: continue from where we are.
                return Page(records, _cursor(last_ts, last_ids), has_more=True)
        return Page(records, _cursor(last_ts, last_ids), has_more=after is not None and len(records) >= limit)

    def _record(self, object_type: str, raw: Mapping[str, Any]) -> RemoteRecord:
        properties = dict(raw.get("properties") or {})
        updated = _parse_time(raw.get("updatedAt")) or _from_millis(
            _millis(properties.get(MODIFIED[object_type]))
        )
        return RemoteRecord(
            id=str(raw["id"]), properties=properties, updated_at=updated, archived=bool(raw.get("archived"))
        )

    # --- writing -----------------------------------------------------------------------------

    def write_batch(self, object_type: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Linked records are updated by id; new ones are upserted on ``abohub_id`` (safe to retry)."""
        linked = [item for item in items if item.remote_id]
        new = [item for item in items if not item.remote_id]
        done: dict[str, WriteResult] = {}
        for group, write in ((linked, self._update), (new, self._upsert)):
            for start in range(0, len(group), BATCH_LIMIT):
                chunk = group[start : start + BATCH_LIMIT]
                with self.http.unanswered_writes() as unanswered:
                    try:
                        results = self._in_halves(self._creating_properties(write), object_type, chunk)
                    except (RetriableError, MalformedResponse) as error:
                        # Only this batch failed: the ones already written stay written. An answer cut
                        # off after the write is safe to send again (by id, or upsert on abohub_id).
                        if isinstance(error, MalformedResponse):
                            error = RetriableError(
                                f"{error} (resent: the write may have happened)", error.exchange
                            )
                        results = [WriteResult(i.local_id, i.remote_id, ok=False, error=error) for i in chunk]
                for result in results:
                    done[result.local_id] = replace(result, unanswered=True) if unanswered else result
        return [done[item.local_id] for item in items]

    def _creating_properties(
        self, write: Callable[[str, Sequence[WriteItem]], list[WriteResult]]
    ) -> Callable[[str, Sequence[WriteItem]], list[WriteResult]]:
        """A portal that has never seen Abohub (a connection added in the admin or the API) refuses the
        abohub_* properties: create them, once per connector, and write again."""

        def attempt(object_type: str, items: Sequence[WriteItem]) -> list[WriteResult]:
            try:
                return write(object_type, items)
            except FatalError as error:
                if self._properties_ensured or not _lacks_our_property(error):
                    raise
                self._properties_ensured = True
                if not self.ensure_properties():
                    raise
                return write(object_type, items)

        return attempt

    def _in_halves(
        self,
        write: Callable[[str, Sequence[WriteItem]], list[WriteResult]],
        object_type: str,
        items: Sequence[WriteItem],
    ) -> list[WriteResult]:
        """HubSpot refuses a whole batch for one bad record: halve it until the bad ones stand alone,
        so one bad record never holds back the others."""
        try:
            return write(object_type, items)
        except FatalError as error:
            if len(items) == 1:
                return [WriteResult(items[0].local_id, items[0].remote_id, ok=False, error=error)]
            middle = len(items) // 2
            return self._in_halves(write, object_type, items[:middle]) + self._in_halves(
                write, object_type, items[middle:]
            )

    def _update(self, object_type: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        inputs = [
            {"id": item.remote_id, "properties": {**item.properties, UPSERT_KEY: item.local_id}}
            for item in items
        ]
        body = self.http.post_json(f"/crm/v3/objects/{object_type}/batch/update", {"inputs": inputs}) or {}
        by_id = {str(r["id"]): r for r in body.get("results", [])}
        failed = _errors_by_key(body.get("errors", []))
        results = []
        for item in items:
            stored = by_id.get(str(item.remote_id))
            if stored is not None:
                results.append(
                    WriteResult(
                        item.local_id,
                        item.remote_id,
                        ok=True,
                        properties=dict(stored.get("properties") or {}),
                    )
                )
            else:
                message = failed.get(str(item.remote_id)) or failed.get("*") or "HubSpot did not return it"
                error = (NotFound if "not found" in message.lower() else FatalError)(
                    f"HubSpot refused {object_type} {item.remote_id}: {message}"
                )
                results.append(WriteResult(item.local_id, item.remote_id, ok=False, error=error))
        return results

    def _upsert(self, object_type: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        inputs = [
            {
                "idProperty": UPSERT_KEY,
                "id": item.local_id,
                "properties": {**item.properties, UPSERT_KEY: item.local_id},
            }
            for item in items
        ]
        body = self.http.post_json(f"/crm/v3/objects/{object_type}/batch/upsert", {"inputs": inputs}) or {}
        by_key = {str((r.get("properties") or {}).get(UPSERT_KEY)): r for r in body.get("results", [])}
        failed = _errors_by_key(body.get("errors", []))
        results = []
        for item in items:
            stored = by_key.get(item.local_id)
            if stored is not None:
                results.append(
                    WriteResult(
                        item.local_id,
                        str(stored["id"]),
                        ok=True,
                        properties=dict(stored.get("properties") or {}),
                    )
                )
            else:
                message = failed.get(item.local_id) or failed.get("*") or "HubSpot did not return this record"
                results.append(
                    WriteResult(
                        item.local_id,
                        item.remote_id,
                        ok=False,
                        error=FatalError(f"HubSpot refused {object_type} {item.local_id}: {message}"),
                    )
                )
        return results

    def archive(self, object_type: str, remote_ids: Sequence[str]) -> list[WriteResult]:
        results = []
        for start in range(0, len(remote_ids), BATCH_LIMIT):
            chunk = remote_ids[start : start + BATCH_LIMIT]
            try:
                self.http.post_json(
                    f"/crm/v3/objects/{object_type}/batch/archive",
                    {"inputs": [{"id": remote_id} for remote_id in chunk]},
                )
                results.extend(WriteResult(remote_id, remote_id, ok=True) for remote_id in chunk)
            except ConnectorError as error:
                results.extend(
                    WriteResult(remote_id, remote_id, ok=False, error=error) for remote_id in chunk
                )
        return results

    # --- associations ------------------------------------------------------------------------

    def associate(
        self, from_object: str, to_object: str, pairs: Sequence[tuple[str, str]]
    ) -> list[WriteResult]:
        """Associate each (from id, to id), e.g. a deal with its contact; one result per pair, in order.

        A result's ``local_id`` is the from-record's id and ``remote_id`` the to-record's. Associating a
        pair that is already associated succeeds and changes nothing, so a retry is safe. A pair whose
        record HubSpot does not find fails with :class:`NotFound`, another refusal with
        :class:`FatalError`; neither holds back the other pairs. Transient errors are raised.
        """
        type_id = _association_type(from_object, to_object)
        wanted = list(dict.fromkeys((str(a), str(b)) for a, b in pairs))
        done: dict[tuple[str, str], WriteResult] = {}
        for start in range(0, len(wanted), ASSOCIATION_BATCH):
            chunk = wanted[start : start + ASSOCIATION_BATCH]
            done.update(self._associate(from_object, to_object, type_id, chunk))
        return [done[(str(a), str(b))] for a, b in pairs]

    def _associate(
        self, from_object: str, to_object: str, type_id: int, pairs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], WriteResult]:
        spec = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
        inputs = [{"from": {"id": a}, "to": {"id": b}, "types": spec} for a, b in pairs]
        try:
            answer = (
                self.http.post_json(
                    f"/crm/v4/associations/{from_object}/{to_object}/batch/create", {"inputs": inputs}
                )
                or {}
            )
        except FatalError as error:
            if len(pairs) == 1:
                return {pairs[0]: WriteResult(*pairs[0], ok=False, error=error)}
            middle = len(pairs) // 2  # as with upserts: halve around a batch refused for one bad pair
            return {
                **self._associate(from_object, to_object, type_id, pairs[:middle]),
                **self._associate(from_object, to_object, type_id, pairs[middle:]),
            }
        made = {(str(r.get("fromObjectId")), str(r.get("toObjectId"))) for r in answer.get("results", [])}
        errors = answer.get("errors", [])
        results = {}
        for pair in pairs:
            if pair in made:
                results[pair] = WriteResult(*pair, ok=True)
                continue
            message, category = _association_error(errors, *pair)
            error_class = NotFound if category == "OBJECT_NOT_FOUND" else FatalError
            text = f"HubSpot did not associate {from_object} {pair[0]} with {to_object} {pair[1]}: {message}"
            results[pair] = WriteResult(*pair, ok=False, error=error_class(text))
        return results

    def associations(
        self, from_object: str, remote_ids: Sequence[str], to_object: str
    ) -> dict[str, list[str]]:
        """The ids of the ``to_object`` records associated with each record (``[]`` for none)."""
        _association_type(from_object, to_object)
        found: dict[str, list[str]] = {str(remote_id): [] for remote_id in remote_ids}
        pending = [{"id": remote_id} for remote_id in found]
        while pending:
            following = []
            for start in range(0, len(pending), ASSOCIATION_BATCH):
                # 207 errors name the ids with no associations (or no record): they keep [].
                answer = (
                    self.http.post_json(
                        f"/crm/v4/associations/{from_object}/{to_object}/batch/read",
                        {"inputs": pending[start : start + ASSOCIATION_BATCH]},
                    )
                    or {}
                )
                for result in answer.get("results", []):
                    from_id = str(result["from"]["id"])
                    found.setdefault(from_id, []).extend(str(to["toObjectId"]) for to in result.get("to", []))
                    after = ((result.get("paging") or {}).get("next") or {}).get("after")
                    if after:
                        following.append({"id": from_id, "after": after})
            pending = following
        return found

    # --- webhooks ----------------------------------------------------------------------------

    def verify_webhook(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> None:
        lowered = {k.lower(): v for k, v in headers.items()}
        signature = lowered.get("x-hubspot-signature-v3")
        timestamp = lowered.get("x-hubspot-request-timestamp")
        if not signature or not timestamp or not timestamp.isdigit():
            raise WebhookRejected("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
        sent = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
        if abs(now - sent) > SIGNATURE_WINDOW:
            raise WebhookRejected("the webhook's timestamp is more than five minutes away from now")
        expected = sign_v3(self.config["client_secret"], method, url, body, timestamp)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise WebhookRejected("the webhook's signature does not match")

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]:
        try:
            events = json.loads(body)
        except ValueError as exc:
            raise WebhookRejected("the webhook body is not JSON") from exc
        if not isinstance(events, list):
            raise WebhookRejected("a HubSpot webhook body is a JSON array of events")
        parsed = []
        for event in events:
            try:
                prefix, _, change = str(event["subscriptionType"]).partition(".")
                object_type = SUBSCRIPTION_TYPES[prefix]
                properties = (
                    {event["propertyName"]: event.get("propertyValue")} if event.get("propertyName") else {}
                )
                parsed.append(
                    WebhookEvent(
                        event_id=str(event["eventId"]),
                        object_type=object_type,
                        remote_id=str(event["objectId"]),
                        action=ACTIONS.get(change, "updated"),
                        occurred_at=_from_millis(event.get("occurredAt")),
                        properties=properties,
                    )
                )
            except (KeyError, TypeError) as exc:
                raise WebhookRejected(f"an event lacks {exc}") from exc
        return parsed

    @classmethod
    def default_mappings(cls) -> list[dict[str, Any]]:
        return [_customer_contact_mapping(), _subscription_deal_mapping()]

    @classmethod
    def mapping_templates(cls) -> dict[str, dict[str, Any]]:
        """Alternatives to a default mapping: B2B portals keep their customers as companies."""
        return {"customer→companies": _customer_company_mapping()}


def _association_type(from_object: str, to_object: str) -> int:
    try:
        return ASSOCIATION_TYPES[(from_object, to_object)]
    except KeyError:
        pairs = ", ".join(f"{a}→{b}" for a, b in ASSOCIATION_TYPES)
        raise ValueError(f"HubSpot associations here are {pairs}; not {from_object}→{to_object}") from None


def _association_error(errors: list[dict[str, Any]], from_id: str, to_id: str) -> tuple[str, str | None]:
    """The message and category of the 207 error that names this pair's from or to id.

    HubSpot's errors name ids in ``context`` (``fromObjectId`` / ``toObjectId``); an error without
    context is taken to be about every input left out of the results.
    """
    for error in errors:
        context = error.get("context") or {}
        named = {
            "fromObjectId": from_id in _strings(context.get("fromObjectId")),
            "toObjectId": to_id in _strings(context.get("toObjectId")),
        }
        if any(named.values()) or not context:
            return str(error.get("message", "error")), error.get("category")
    return "HubSpot did not return this association", None


def _strings(values: Any) -> set[str]:
    return {str(v) for v in (values if isinstance(values, list) else [values] if values is not None else [])}


def _money(local: str) -> dict[str, Any]:
    """An amount in minor units, sent as a decimal in the record's own currency (not a fixed one)."""
    return {"local": [local, "currency"], "direction": "push", "to_remote": [{"name": "money_to_decimal"}]}


def _customer_contact_mapping() -> dict[str, Any]:
    status = {"none": "Prospect", "active": "Active", "paused": "Paused", "churned": "Churned"}
    return {
        "object_type": "customer",
        "remote_object": "contacts",
        "key": [{"local": "email", "remote": "email"}, {"local": "id", "remote": UPSERT_KEY}],
        "fields": [
            {
                "local": "name",
                "remote": ["firstname", "lastname"],
                "direction": "both",
                "policy": "manual",
                "to_remote": [{"name": "trim"}, {"name": "split_name"}],
                "to_local": [{"name": "join_name"}],
            },
            {
                "local": "email",
                "remote": "email",
                "direction": "both",
                "policy": "hub_wins",
                "to_remote": [{"name": "trim"}, {"name": "lower"}],
                "to_local": [{"name": "trim"}, {"name": "lower"}],
            },
            {
                "local": "country",
                "remote": "country",
                "direction": "both",
                "policy": "newest_wins",
                "to_remote": [],
                "to_local": [{"name": "trim"}, {"name": "upper"}],
            },
            {
                "local": "vat_number",
                "remote": "abohub_vat_number",
                "direction": "both",
                "policy": "hub_wins",
                "to_remote": [{"name": "trim"}],
                "to_local": [{"name": "trim"}, {"name": "empty_to_none"}],
            },
            {
                "local": "revenue_state",
                "remote": "abohub_status",
                "direction": "push",
                "to_remote": [{"name": "enum_map", "values": status}],
            },
            {"local": "plan_names", "remote": "abohub_plan", "direction": "push", "to_remote": []},
            {**_money("mrr"), "remote": "abohub_mrr"},
            {**_money("lifetime_value"), "remote": "abohub_ltv"},
            {"local": "currency", "remote": "abohub_currency", "direction": "push", "to_remote": []},
        ],
    }


def _customer_company_mapping() -> dict[str, Any]:
    """Customers as companies (B2B): the company's name is the customer's; no email on a company, so
    records are matched on the VAT number or the Abohub id."""
    contact = {
        entry["remote"]: entry
        for entry in _customer_contact_mapping()["fields"]
        if isinstance(entry["remote"], str)
    }
    return {
        "object_type": "customer",
        "remote_object": "companies",
        "key": [
            {"local": "vat_number", "remote": "abohub_vat_number"},
            {"local": "id", "remote": UPSERT_KEY},
        ],
        "fields": [
            {
                "local": "name",
                "remote": "name",
                "direction": "both",
                "policy": "manual",
                "to_remote": [{"name": "trim"}],
                "to_local": [{"name": "trim"}],
            },
            *(
                contact[name]
                for name in (
                    "country",
                    "abohub_vat_number",
                    "abohub_status",
                    "abohub_plan",
                    "abohub_mrr",
                    "abohub_ltv",
                    "abohub_currency",
                )
            ),
        ],
    }


# Subscription status → a stage of HubSpot's default deal pipeline ("default"). A trial is an open deal
# (the customer chose a plan but has not paid); a subscription that has been paid for is won, also while
# past due or paused (abohub_status says which); a cancellation loses the deal.
DEAL_PIPELINE = "default"
DEAL_STAGES = {
    "trialing": "decisionmakerboughtin",
    "active": "closedwon",
    "past_due": "closedwon",
    "paused": "closedwon",
    "canceled": "closedlost",
}
SUBSCRIPTION_STATUS = {
    "trialing": "Trialing",
    "active": "Active",
    "past_due": "Past due",
    "paused": "Paused",
    "canceled": "Canceled",
}


def _subscription_deal_mapping() -> dict[str, Any]:
    """Push only: the hub owns subscriptions. ``amount`` is the subscription's monthly value (its MRR as if
    it were paying), so an open trial deal forecasts and a lost deal keeps what was lost; ``abohub_mrr`` is
    the MRR that counts now (0 while trialing, paused or canceled)."""
    return {
        "object_type": "subscription",
        "remote_object": "deals",
        "key": [{"local": "id", "remote": UPSERT_KEY}],
        "fields": [
            {
                "local": ["plan_name", "customer_label"],
                "remote": "dealname",
                "direction": "push",
                "to_remote": [{"name": "join_text", "separator": " — "}],
            },
            {
                "remote": "pipeline",
                "direction": "push",
                "to_remote": [{"name": "constant", "value": DEAL_PIPELINE}],
            },
            {
                "local": "status",
                "remote": "dealstage",
                "direction": "push",
                "to_remote": [{"name": "enum_map", "values": DEAL_STAGES}],
            },
            {**_money("monthly_value"), "remote": "amount"},
            {"local": "currency", "remote": "deal_currency_code", "direction": "push", "to_remote": []},
            {
                "local": "status",
                "remote": "abohub_status",
                "direction": "push",
                "to_remote": [{"name": "enum_map", "values": SUBSCRIPTION_STATUS}],
            },
            {**_money("mrr"), "remote": "abohub_mrr"},
        ],
    }


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + url.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _cursor(timestamp: int, ids: set[str]) -> str:
    return json.dumps({"ts": timestamp, "ids": sorted(ids)})


def _parse_cursor(cursor: str | None) -> tuple[int, list[str]]:
    if not cursor:
        return 0, []
    data = json.loads(cursor)
    return int(data["ts"]), list(data.get("ids", []))


def _millis(value: Any) -> int | None:
    """HubSpot gives modification times as epoch milliseconds or ISO 8601 text."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    moment = _parse_time(text)
    return int(moment.timestamp() * 1000) if moment else None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _from_millis(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


OUR_PROPERTIES = frozenset(name for _, name, *_ in CUSTOM_PROPERTIES)


def _lacks_our_property(error: FatalError) -> bool:
    """HubSpot's refusal names a missing property (PROPERTY_DOESNT_EXIST) that Abohub creates itself."""
    body = (error.exchange.response_body if error.exchange else None) or str(error)
    if "PROPERTY_DOESNT_EXIST" not in body and "does not exist" not in body:
        return False
    return any(f'"{name}' in body for name in OUR_PROPERTIES)  # escaped in JSON or not


def _errors_by_key(errors: list[dict[str, Any]]) -> dict[str, str]:
    """HubSpot's 207 errors name the failing inputs in ``context``; fall back to one message for all."""
    found: dict[str, str] = {}
    for error in errors:
        message = str(error.get("message", "error"))
        context = error.get("context") or {}
        keys = [
            str(v) for values in context.values() for v in (values if isinstance(values, list) else [values])
        ]
        for key in keys or ["*"]:
            found[key] = message
    return found
