"""``Idempotency-Key`` on POST, with Stripe's semantics.

The first request with a key runs and its response (any status below 500) is
stored; the same key with the same method, path and body replays that
response for 24 hours; the same key with anything else is a 400
``idempotency_error``; a key whose first request is still running is a 409.
A 5xx response is not stored, so a retry runs again.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from flask import Response, g, request
from flask.typing import ResponseReturnValue
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.api.context import hub
from hub.api.errors import error_response
from hub.store.models import IdempotencyRecord

HEADER = "Idempotency-Key"
LIFETIME = timedelta(hours=24)
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), request.get_data(cache=True)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def before() -> ResponseReturnValue | None:
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None:
        return None
    if not _VALID.match(key):
        return error_response(
            400,
            "idempotency_error",
            "Idempotency-Key must be 1-255 printable ASCII characters",
            {HEADER: ["must be 1-255 printable ASCII characters"]},
        )
    api_key_id = g.api_key.id
    fingerprint = _fingerprint()
    now = hub().clock.now()
    with hub().session_factory() as session, session.begin():
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == api_key_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.created_at < now - LIFETIME,
            )
        )
        record = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key
            )
        )
        if record is not None:
            if record.fingerprint != fingerprint:
                return error_response(
                    400,
                    "idempotency_error",
                    "this Idempotency-Key was used with a different request; use a new key",
                    {HEADER: ["was first used with another method, path or body"]},
                )
            if record.response_status is None:
                return error_response(
                    409,
                    "conflict",
                    "a request with this Idempotency-Key is still running",
                    headers={"Retry-After": "1"},
                )
            replay = Response(
                record.response_body, status=record.response_status, mimetype="application/json"
            )
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        try:
            with session.begin_nested():
                record_id = session.scalar(
                    insert(IdempotencyRecord)
                    .values(
                        api_key_id=api_key_id,
                        key=key,
                        method=request.method,
                        path=request.path,
                        fingerprint=fingerprint,
                        created_at=now,
                    )
                    .returning(IdempotencyRecord.id)
                )
        except IntegrityError:
            return error_response(
                409,
                "conflict",
                "a request with this Idempotency-Key is still running",
                headers={"Retry-After": "1"},
            )
    g.idempotency_record_id = record_id
    return None


def after(response: Response) -> Response:
    record_id = g.pop("idempotency_record_id", None)
    if record_id is None:
        return response
    with hub().session_factory() as session, session.begin():
        if response.status_code >= 500:
            session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
        else:
            session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.id == record_id)
                .values(
                    response_status=response.status_code,
                    response_body=response.get_data(as_text=True),
                    completed_at=hub().clock.now(),
                )
            )
    return response
