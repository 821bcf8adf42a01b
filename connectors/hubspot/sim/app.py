"""The WSGI application: routing, auth, rate limits, faults, and the CRM endpoints.

Order of work for a request: match the route, let an injected fault fire,
authenticate (401), count it against the rate limits (429), then run the
handler under the store lock (so each request, batches included, is atomic).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from connectors.hubspot.sim import associations as assoc
from connectors.hubspot.sim import errors, search
from connectors.hubspot.sim.auth import Auth, Principal
from connectors.hubspot.sim.clock import iso
from connectors.hubspot.sim.faults import Fault, Faults
from connectors.hubspot.sim.ratelimit import RateLimits, rate_limit_body
from connectors.hubspot.sim.schema import DEFAULT_RETURNED, LABEL, MODIFIED, OBJECT_TYPES, TYPE_IDS, Schema
from connectors.hubspot.sim.stats import LoggedRequest, Stats, scrub
from connectors.hubspot.sim.store import Record, Store

log = logging.getLogger(__name__)
JSON = "application/json;charset=utf-8"
_BAD_GATEWAY = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>cloudflare</center></body></html>"
)
_GATEWAY_TIMEOUT = (
    "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1>"
    "</center></body></html>"
)

RULES = [
    Rule("/oauth/v1/token", methods=["POST"], endpoint="oauth_token"),
    Rule("/oauth/authorize", methods=["GET"], endpoint="oauth_authorize"),
    Rule("/oauth/v1/access-tokens/<token>", methods=["GET"], endpoint="oauth_token_info"),
    Rule("/oauth/v1/refresh-tokens/<token>", methods=["DELETE"], endpoint="oauth_revoke"),
    Rule("/crm/v3/properties/<object_type>", methods=["GET"], endpoint="properties_list"),
    Rule("/crm/v3/properties/<object_type>", methods=["POST"], endpoint="properties_create"),
    Rule("/crm/v3/properties/<object_type>/<name>", methods=["GET"], endpoint="properties_get"),
    Rule("/crm/v3/objects/<object_type>", methods=["GET"], endpoint="objects_list"),
    Rule("/crm/v3/objects/<object_type>", methods=["POST"], endpoint="objects_create"),
    Rule("/crm/v3/objects/<object_type>/search", methods=["POST"], endpoint="objects_search"),
    Rule("/crm/v3/objects/<object_type>/batch/read", methods=["POST"], endpoint="batch_read"),
    Rule("/crm/v3/objects/<object_type>/batch/create", methods=["POST"], endpoint="batch_create"),
    Rule("/crm/v3/objects/<object_type>/batch/update", methods=["POST"], endpoint="batch_update"),
    Rule("/crm/v3/objects/<object_type>/batch/upsert", methods=["POST"], endpoint="batch_upsert"),
    Rule("/crm/v3/objects/<object_type>/batch/archive", methods=["POST"], endpoint="batch_archive"),
    Rule("/crm/v3/objects/<object_type>/<object_id>", methods=["GET"], endpoint="objects_get"),
    Rule("/crm/v3/objects/<object_type>/<object_id>", methods=["PATCH"], endpoint="objects_update"),
    Rule("/crm/v3/objects/<object_type>/<object_id>", methods=["DELETE"], endpoint="objects_archive"),
    *[
        Rule(f"/crm/v4/associations/<from_type>/<to_type>/batch/{action}", methods=["POST"], endpoint=name)
        for action, name in (
            ("create", "associations_create"),
            ("associate/default", "associations_default"),
            ("read", "associations_read"),
            ("archive", "associations_archive"),
        )
    ],
    Rule(
        "/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>",
        methods=["GET"],
        endpoint="associations_list",
    ),
]
_PUBLIC = {"oauth_token", "oauth_authorize", "oauth_token_info", "oauth_revoke"}
SYSTEM_RETURNED = ("createdate", "hs_object_id")


@dataclass
class Limits:
    batch: int = 100
    list_max: int = 100
    search: search.SearchLimits | None = None
    associations: int = 2000  # inputs per association create/archive (a third-party figure)
    association_reads: int = 1000  # inputs per association batch read (HubSpot's changelog)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] | None = None
    raw: str | None = None  # a non-JSON body
    content_type: str = JSON


class HubSpotApp:
    def __init__(
        self,
        *,
        schema: Schema,
        store: Store,
        auth: Auth,
        rate_limits: RateLimits,
        faults: Faults,
        stats: Stats,
        limits: Limits,
        app_id: int,
        stopping: threading.Event,
    ) -> None:
        self.schema = schema
        self.store = store
        self.auth = auth
        self.rate_limits = rate_limits
        self.faults = faults
        self.stats = stats
        self.limits = limits
        self.search_limits = limits.search or search.SearchLimits()
        self.app_id = app_id
        self.stopping = stopping
        self.url_map = Map([r.empty() for r in RULES], strict_slashes=False)

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        started = time.perf_counter()
        template, principal, fault_kind = "<unmatched>", None, None
        try:
            adapter = self.url_map.bind_to_environ(environ)
            try:
                rule, args = adapter.match(return_rule=True)
                template = rule.rule.replace("<", "{").replace(">", "}")
            except NotFound:
                answer = Answer(404, errors.body("resource not found", "OBJECT_NOT_FOUND"))
            except MethodNotAllowed:
                answer = Answer(405, errors.body(f"{request.method} is not allowed on {request.path}"))
            else:
                fault = self.faults.take(request.method, request.path)
                fault_kind = fault.kind if fault else None
                answer, principal = self._serve(request, rule.endpoint, args, fault)
        except HTTPException as exc:  # pragma: no cover - werkzeug's own refusals
            answer = Answer(exc.code or 400, errors.body(exc.description or "bad request"))
        except Exception:  # a bug in the simulator: say so instead of hanging the client
            log.exception("HubSpot simulator failed on %s %s", request.method, request.path)
            answer = Answer(500, errors.body("simulator error", "INTERNAL_ERROR"))
        response = self._response(answer)
        self.stats.record(
            LoggedRequest(
                request.method,
                request.path,
                template,
                scrub(dict(request.args.items())),
                answer.status,
                principal.kind if principal else None,
                fault_kind,
                _logged_body(request),
                (time.perf_counter() - started) * 1000,
            )
        )
        return response(environ, start_response)

    def _response(self, answer: Answer) -> Response:
        if answer.status == 204:
            response = Response(status=204)
        elif answer.raw is not None:
            response = Response(answer.raw, status=answer.status, content_type=answer.content_type)
        else:
            response = Response(
                json.dumps(answer.body), status=answer.status, content_type=answer.content_type
            )
        if isinstance(answer.body, dict) and "correlationId" in answer.body:
            response.headers["X-HubSpot-Correlation-Id"] = str(answer.body["correlationId"])
        for key, value in (answer.headers or {}).items():
            response.headers[key] = value
        return response

    def _serve(
        self, request: Request, endpoint: str, args: dict[str, str], fault: Fault | None
    ) -> tuple[Answer, Principal | None]:
        if fault is not None:
            early = self._fault(fault)
            if early is not None:
                return early, None
        principal: Principal | None = None
        headers: dict[str, str] = {}
        try:
            if endpoint not in _PUBLIC:
                principal = self.auth.authenticate(request.headers.get("Authorization"))
                headers = self.rate_limits.check(
                    principal.limit_key,
                    search=endpoint == "objects_search",
                    daily_headers=principal.kind == "private_app",
                )
            handler = getattr(self, "do_" + endpoint)
            with self.store.lock:
                answer: Answer = handler(request, principal, **args)
        except errors.ApiError as exc:
            answer = Answer(exc.status, exc.body)
            headers.update(exc.headers)
        except errors.PropertyErrors as exc:
            api = exc.api_error()
            answer = Answer(api.status, api.body)
        answer.headers = {**headers, **(answer.headers or {})}
        if fault is not None and fault.kind == "malformed":
            text = json.dumps(answer.body) if answer.body is not None else '{"results":[]}'
            return Answer(200, raw=text[: max(1, len(text) // 2)], headers=answer.headers), principal
        return answer, principal

    def _fault(self, fault: Fault) -> Answer | None:
        """The answer of a fault that stops the request, or ``None`` to go on (late or malformed)."""
        if fault.kind == "timeout":
            self.stopping.wait(fault.seconds)
            if fault.apply:
                return None
            return Answer(504, raw=_GATEWAY_TIMEOUT, content_type="text/html")
        if fault.kind == "malformed":
            if fault.apply:
                return None
            return Answer(200, raw='{"status":"COMPLETE","results":[{"id":"1","proper')
        if fault.kind == "http_500":
            return Answer(500, errors.body("An internal error has occurred.", "INTERNAL_ERROR"))
        if fault.kind == "http_502":
            return Answer(502, raw=_BAD_GATEWAY, content_type="text/html")
        if fault.kind == "http_503":
            return Answer(503, errors.body("Service Unavailable", "SERVICE_UNAVAILABLE"))
        if fault.kind == "missing_scopes":
            return Answer(403, errors.missing_scopes(fault.scope))
        # rate_limit_storm
        return Answer(
            429,
            rate_limit_body("You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"),
            self.rate_limits.storm_headers(None, daily_headers=True),
        )

    # ----------------------------------------------------------------- OAuth
    def do_oauth_token(self, request: Request, _: Principal | None) -> Answer:
        return Answer(200, self.auth.token(dict(request.form.items())))

    def do_oauth_authorize(self, request: Request, _: Principal | None) -> Answer:
        """Consents at once and redirects back with a code (for the demo's OAuth flow)."""
        if request.args.get("client_id") != self.auth.client_id:
            raise errors.bad_request("unknown client_id")
        redirect_uri = request.args.get("redirect_uri")
        if not redirect_uri:
            raise errors.bad_request("redirect_uri is required")
        scopes = tuple((request.args.get("scope") or "").split()) or None
        code = self.auth.issue_code(redirect_uri, scopes) if scopes else self.auth.issue_code(redirect_uri)
        query = {"code": code}
        if request.args.get("state"):
            query["state"] = request.args["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return Answer(302, raw="", headers={"Location": redirect_uri + separator + urlencode(query)})

    def do_oauth_token_info(self, _: Request, __: Principal | None, token: str) -> Answer:
        return Answer(200, self.auth.token_info(token))

    def do_oauth_revoke(self, _: Request, __: Principal | None, token: str) -> Answer:
        if not self.auth.revoke_refresh_token(token):
            raise errors.not_found("refresh token not found")
        return Answer(204)

    # ------------------------------------------------------------ properties
    def do_properties_list(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        archived = request.args.get("archived", "false").lower() == "true"
        return Answer(200, {"results": [p for p in self.schema.all(kind) if p["archived"] == archived]})

    def do_properties_get(self, _: Request, __: Principal | None, object_type: str, name: str) -> Answer:
        prop = self.schema.get(_object_type(object_type), name)
        if prop is None:
            raise errors.not_found(f"Unable to find property {name}")
        return Answer(200, prop)

    def do_properties_create(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        data = _json(request)
        if not isinstance(data, dict):
            raise errors.bad_request("the body must be a JSON object")
        return Answer(201, self.schema.create(_object_type(object_type), data, self.store.clock.now_ms()))

    # --------------------------------------------------------------- objects
    def do_objects_list(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        limit = _query_int(request, "limit", 10)
        if limit < 1 or limit > self.limits.list_max:
            raise errors.bad_request(f"limit must be between 1 and {self.limits.list_max}; got {limit}")
        after = _query_int(request, "after", 0)
        archived = request.args.get("archived", "false").lower() == "true"
        names = self._names(kind, _query_list(request, "properties"))
        records = sorted(
            (r for r in self.store.records[kind].values() if r.archived == archived and r.id >= after),
            key=lambda r: r.id,
        )
        page = records[:limit]
        body: dict[str, Any] = {"results": [r.to_json(names) for r in page]}
        if len(records) > limit:
            following = str(page[-1].id + 1)
            query = urlencode({**dict(request.args.items()), "after": following})
            body["paging"] = {"next": {"after": following, "link": f"{request.base_url}?{query}"}}
        return Answer(200, body)

    def do_objects_get(
        self, request: Request, _: Principal | None, object_type: str, object_id: str
    ) -> Answer:
        kind = _object_type(object_type)
        archived = request.args.get("archived", "false").lower() == "true"
        record = self.store.find(kind, object_id, request.args.get("idProperty"), archived=archived)
        if record is None:
            raise errors.not_found()
        return Answer(200, record.to_json(self._names(kind, _query_list(request, "properties"))))

    def do_objects_create(self, request: Request, principal: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        data = _json(request)
        props = self.schema.normalize(kind, data.get("properties") if isinstance(data, dict) else None)
        record = self.store.create(kind, props, source="INTEGRATION", source_id=str(self.app_id))
        return Answer(201, self._written(record))

    def do_objects_update(
        self, request: Request, _: Principal | None, object_type: str, object_id: str
    ) -> Answer:
        kind = _object_type(object_type)
        data = _json(request)
        props = self.schema.normalize(kind, data.get("properties") if isinstance(data, dict) else None)
        record = self.store.find(kind, object_id, request.args.get("idProperty"))
        if record is None:
            raise errors.not_found()
        self.store.update(record, props, source="INTEGRATION", source_id=str(self.app_id))
        return Answer(200, self._written(record))

    def do_objects_archive(
        self, request: Request, _: Principal | None, object_type: str, object_id: str
    ) -> Answer:
        kind = _object_type(object_type)
        record = self.store.find(kind, object_id, request.args.get("idProperty"))
        if record is not None:
            self.store.archive(record, source="INTEGRATION", source_id=str(self.app_id))
        return Answer(204)

    def do_objects_search(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        data = _json(request)
        if not isinstance(data, dict):
            raise errors.bad_request("the body must be a JSON object")
        page, total, following = search.run(
            self.schema, kind, self.store.searchable(kind), data, self.search_limits
        )
        names = self._names(kind, data.get("properties") or [])
        body: dict[str, Any] = {"total": total, "results": [r.to_json(names) for r in page]}
        if following is not None:
            body["paging"] = {"next": {"after": str(following)}}
        return Answer(200, body)

    # ----------------------------------------------------------------- batch
    def do_batch_read(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        data, inputs, started = self._batch(request)
        id_property = data.get("idProperty")
        if id_property not in (None, "", "hs_object_id"):
            self.store.require_unique(kind, id_property)
        archived = request.args.get("archived", "false").lower() == "true"
        names = self._names(kind, data.get("properties") or [])
        ids = [str(_input_id(i)) for i in inputs]
        _no_duplicates(ids)
        results, missing = [], []
        for value in ids:
            record = self.store.find(kind, value, id_property, archived=archived)
            if record is None:
                missing.append(value)
            else:
                results.append(record.to_json(names))
        return _batch_answer(200, results, _not_found(kind, missing), self._times(started))

    def do_batch_create(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        _, inputs, started = self._batch(request)
        normalized = self._normalize_all(kind, [i.get("properties") for i in inputs])
        self._unique_precheck(kind, [(None, p) for p in normalized])
        results = []
        for props, item in zip(normalized, inputs, strict=True):
            record = self.store.create(kind, props, source="INTEGRATION", source_id=str(self.app_id))
            results.append(_traced(self._written(record), item))
        return _batch_answer(201, results, [], self._times(started))

    def do_batch_update(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        _, inputs, started = self._batch(request)
        ids = [str(_input_id(i)) for i in inputs]
        _no_duplicates(ids)
        normalized = self._normalize_all(kind, [i.get("properties") for i in inputs])
        targets = [self.store.find(kind, v, i.get("idProperty")) for v, i in zip(ids, inputs, strict=True)]
        self._unique_precheck(kind, [(t.id, p) for t, p in zip(targets, normalized, strict=True) if t])
        results, missing = [], []
        for value, record, props, item in zip(ids, targets, normalized, inputs, strict=True):
            if record is None:
                missing.append(value)
                continue
            self.store.update(record, props, source="INTEGRATION", source_id=str(self.app_id))
            results.append(_traced(self._written(record), item))
        return _batch_answer(200, results, _not_found(kind, missing), self._times(started))

    def do_batch_upsert(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        _, inputs, started = self._batch(request)
        id_properties = {i.get("idProperty") for i in inputs}
        if None in id_properties or "" in id_properties:
            raise errors.bad_request("Each upsert input needs an idProperty naming a unique property")
        for name in id_properties:
            self.store.require_unique(kind, name)
        keys = [(i["idProperty"], self._key(kind, i["idProperty"], _input_id(i))) for i in inputs]
        _no_duplicates([f"{p}={v}" for p, v in keys])
        normalized = self._normalize_all(
            kind, [{**(i.get("properties") or {}), p: v} for i, (p, v) in zip(inputs, keys, strict=True)]
        )
        targets = [self.store.find(kind, v, p) for p, v in keys]
        self._unique_precheck(
            kind, [(t.id if t else None, p) for t, p in zip(targets, normalized, strict=True)]
        )
        results = []
        for record, props, item in zip(targets, normalized, inputs, strict=True):
            if record is None:
                created = self.store.create(kind, props, source="INTEGRATION", source_id=str(self.app_id))
                results.append(_traced({**self._written(created), "new": True}, item))
            else:
                self.store.update(record, props, source="INTEGRATION", source_id=str(self.app_id))
                results.append(_traced({**self._written(record), "new": False}, item))
        return _batch_answer(200, results, [], self._times(started))

    def do_batch_archive(self, request: Request, _: Principal | None, object_type: str) -> Answer:
        kind = _object_type(object_type)
        _, inputs, _started = self._batch(request)
        for item in inputs:
            record = self.store.get(kind, _input_id(item))
            if record is not None:
                self.store.archive(record, source="INTEGRATION", source_id=str(self.app_id))
        return Answer(204)

    # ------------------------------------------------------------ associations (v4)
    def do_associations_create(
        self, request: Request, _: Principal | None, from_type: str, to_type: str
    ) -> Answer:
        return self._associate(request, assoc.object_type(from_type), assoc.object_type(to_type), False)

    def do_associations_default(
        self, request: Request, _: Principal | None, from_type: str, to_type: str
    ) -> Answer:
        return self._associate(request, assoc.object_type(from_type), assoc.object_type(to_type), True)

    def _associate(self, request: Request, from_type: str, to_type: str, default: bool) -> Answer:
        links = self.store.associations
        if default and (from_type, to_type) not in assoc.DEFAULT_TYPES:
            raise errors.bad_request(f"There is no default association from {from_type} to {to_type}")
        _, inputs, started = self._batch(request, self.limits.associations)
        # Every input is validated before any is applied: a malformed one fails the whole batch.
        planned = [
            (
                assoc.pair_input(item),
                [assoc.DEFAULT_TYPES[(from_type, to_type)]]
                if default
                else assoc.type_ids(item, from_type, to_type, links),
            )
            for item in inputs
        ]
        missing: dict[str, list[str]] = {"from": [], "to": []}
        results = []
        for (from_id, to_id), type_ids in planned:
            source, target = self.store.get(from_type, from_id), self.store.get(to_type, to_id)
            if source is None or target is None:
                for side, value, record in (("from", from_id, source), ("to", to_id, target)):
                    if record is None and value not in missing[side]:
                        missing[side].append(value)
                continue
            ends = (from_type, source.id), (to_type, target.id)
            for type_id in type_ids:
                links.add(*ends, type_id)
            links.writes[(from_type, to_type)] += 1
            results.append(
                assoc.default_result(*ends, type_ids[0]) if default else links.created(*ends, type_ids)
            )
        errs = [
            assoc.not_found(side, kind, ids)
            for side, kind, ids in (("from", from_type, missing["from"]), ("to", to_type, missing["to"]))
            if ids
        ]
        answer = _batch_answer(201, results, errs, self._times(started))
        if default:  # the spec answers the default endpoint 200 (its body may still carry errors)
            answer.status = 200
        return answer

    def do_associations_read(
        self, request: Request, _: Principal | None, from_type: str, to_type: str
    ) -> Answer:
        from_kind, to_kind = assoc.object_type(from_type), assoc.object_type(to_type)
        _, inputs, started = self._batch(request, self.limits.association_reads)
        results, errs = [], []
        for item in inputs:
            from_id = str(_input_id(item))
            after = _after(item.get("after"))
            source = self.store.get(from_kind, from_id)
            page, following = (
                self.store.associations.read((from_kind, source.id), to_kind, after) if source else ([], None)
            )
            if not page:
                errs.append(assoc.none_associated(from_kind, to_kind, from_id))
                continue
            result: dict[str, Any] = {"from": {"id": from_id}, "to": page}
            if following is not None:
                result["paging"] = {"next": {"after": str(following)}}
            results.append(result)
        return _batch_answer(200, results, errs, self._times(started))

    def do_associations_archive(
        self, request: Request, _: Principal | None, from_type: str, to_type: str
    ) -> Answer:
        from_kind, to_kind = assoc.object_type(from_type), assoc.object_type(to_type)
        _, inputs, _started = self._batch(request, self.limits.associations)
        pairs = []
        for item in inputs:
            source, targets = item.get("from"), item.get("to")
            if not isinstance(source, dict) or not isinstance(targets, list):
                raise errors.bad_request("each input needs from: {id} and to: [{id}, ...]")
            if not all(isinstance(target, dict) for target in targets):
                raise errors.bad_request("each of to must be an object with an id")
            pairs += [(str(_input_id(source)), str(_input_id(target))) for target in targets]
        for from_id, to_id in pairs:
            source, target = self.store.get(from_kind, from_id), self.store.get(to_kind, to_id)
            if source is not None and target is not None:
                self.store.associations.remove((from_kind, source.id), (to_kind, target.id))
                self.store.associations.writes[(from_kind, to_kind)] += 1
        return Answer(204)

    def do_associations_list(
        self, request: Request, _: Principal | None, object_type: str, object_id: str, to_type: str
    ) -> Answer:
        from_kind, to_kind = assoc.object_type(object_type), assoc.object_type(to_type)
        limit = _query_int(request, "limit", assoc.PAGE)
        if limit < 1 or limit > assoc.PAGE:
            raise errors.bad_request(f"limit must be between 1 and {assoc.PAGE}; got {limit}")
        after = _after(request.args.get("after"))
        source = self.store.get(from_kind, object_id)
        page, following = (
            self.store.associations.read((from_kind, source.id), to_kind, after, limit)
            if source
            else ([], None)
        )
        body: dict[str, Any] = {"results": page}
        if following is not None:
            body["paging"] = {"next": {"after": str(following)}}
        return Answer(200, body)

    # ------------------------------------------------------------- internals
    def _batch(
        self, request: Request, limit: int | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
        started = self.store.clock.now_ms()
        data = _json(request)
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
            raise errors.bad_request("the body must be an object with a list of inputs")
        inputs = data["inputs"]
        limit = self.limits.batch if limit is None else limit
        if len(inputs) > limit:
            raise errors.bad_request(
                f"The maximum number of inputs supported in a batch request is {limit}. "
                "Please reduce the number of items and try again",
                context={"inputs": [str(len(inputs))]},
            )
        if not all(isinstance(i, dict) for i in inputs):
            raise errors.bad_request("each input must be an object")
        return data, inputs, started

    def _normalize_all(self, kind: str, values: list[Any]) -> list[dict[str, str | None]]:
        """All inputs validated before any is applied; the first bad one fails the whole batch."""
        return [self.schema.normalize(kind, v if v is not None else {}) for v in values]

    def _unique_precheck(self, kind: str, planned: list[tuple[int | None, dict[str, str | None]]]) -> None:
        seen: dict[tuple[str, str], int | None] = {}
        for own_id, props in planned:
            for name, value in props.items():
                if value is None or not self.schema.is_unique(kind, name):
                    continue
                if (name, value) in seen and seen[(name, value)] != own_id:
                    raise errors.bad_request(
                        f"Duplicate values for unique property {name} in the batch: {value}"
                    )
                seen[(name, value)] = own_id
                existing = self.store.find(kind, value, name)
                if existing is not None and existing.id != own_id:
                    if kind == "contacts" and name == "email":
                        raise errors.conflict(f"Contact already exists. Existing ID: {existing.id}")
                    raise errors.conflict(
                        f"A record with {name} '{value}' already exists. Existing ID: {existing.id}"
                    )

    def _times(self, started: int) -> tuple[int, int]:
        return started, self.store.clock.now_ms()

    def _key(self, kind: str, id_property: str, value: object) -> str:
        text = str(value)
        return text.strip().lower() if kind == "contacts" and id_property == "email" else text

    def _names(self, kind: str, requested: list[str]) -> list[str]:
        if not requested:
            return list(DEFAULT_RETURNED[kind])
        names = [n for n in dict.fromkeys(requested) if self.schema.get(kind, n) is not None]
        for always in (*SYSTEM_RETURNED, MODIFIED[kind]):
            if always not in names:
                names.append(always)
        return names

    def _written(self, record: Record) -> dict[str, Any]:
        """What create and update answer with: the record's set values and its system properties."""
        return record.to_json([*record.props, *SYSTEM_RETURNED, MODIFIED[record.object_type]])


def _object_type(name: str) -> str:
    kind = TYPE_IDS.get(name, name)
    if kind not in OBJECT_TYPES:
        raise errors.bad_request(f"Unable to infer object type from: {name}")
    return kind


def _json(request: Request) -> Any:
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise errors.bad_request(f"Invalid input JSON: {exc}") from None


def _logged_body(request: Request) -> Any:
    if request.mimetype == "application/x-www-form-urlencoded":
        return scrub(dict(request.form.items()))
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:2000].decode(errors="replace")


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer; got {raw!r}") from None


def _query_list(request: Request, name: str) -> list[str]:
    out: list[str] = []
    for value in request.args.getlist(name):
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _input_id(item: dict[str, Any]) -> Any:
    if "id" not in item or item["id"] in (None, ""):
        raise errors.bad_request("each input needs an id")
    return item["id"]


def _after(value: Any) -> int:
    """A paging cursor (an offset here); 400 for one this simulator did not hand out."""
    if value in (None, ""):
        return 0
    if not str(value).isdigit():
        raise errors.bad_request(f"after must be a paging cursor from a previous answer; got {value!r}")
    return int(value)


def _no_duplicates(ids: list[str]) -> None:
    seen: set[str] = set()
    duplicates = [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]
    if duplicates:
        raise errors.bad_request(f"Duplicate IDs found in batch input: {sorted(set(duplicates))}")


def _traced(result: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    if item.get("objectWriteTraceId"):
        result["objectWriteTraceId"] = item["objectWriteTraceId"]
    return result


def _not_found(kind: str, missing: list[str]) -> list[dict[str, Any]]:
    if not missing:
        return []
    return [
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {LABEL[kind]} objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "context": {"ids": missing},
        }
    ]


def _batch_answer(
    status: int, results: list[dict[str, Any]], errs: list[dict[str, Any]], times: tuple[int, int]
) -> Answer:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(times[0]),
        "completedAt": iso(times[1]),
    }
    if errs:
        body["numErrors"] = len(errs)
        body["errors"] = errs
        return Answer(207, body)
    return Answer(status, body)
