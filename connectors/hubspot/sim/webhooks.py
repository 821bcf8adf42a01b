"""Webhook events when records change, delivered signed like HubSpot's (v3, plus v1).

Each change becomes events of the app's subscriptions: ``contact.creation``,
``contact.propertyChange`` (one per changed property, with ``propertyName``
and ``propertyValue``), ``contact.deletion``, and the same for ``company.*``
and ``deal.*``. Changes made through the API carry ``changeSource``
``INTEGRATION`` (HubSpot notifies an app of its own writes too; receivers must
suppress the echo); a test's "UI" edits carry ``CRM_UI``.

Events are POSTed as a JSON array of up to ``batch_size`` (100) events to
every target URL, with ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client
secret, method + URI + body + timestamp)) and ``X-HubSpot-Request-Timestamp``
(ms), and the legacy ``X-HubSpot-Signature`` v1 = hex(SHA-256(secret + body)).
A non-2xx answer or a connection error is retried after each of
``retry_delays`` with ``attemptNumber`` counting up, then given up (recorded).

Modes: ``auto`` delivers from a background thread shortly after a change;
``manual`` queues until :meth:`Webhooks.flush`; ``off`` records events and
never sends them. ``duplicates=True`` sends every batch twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests

from connectors.hubspot.sim.schema import SINGULAR
from connectors.hubspot.sim.store import SYSTEM_PROPERTIES, Change

USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon"
MODES = ("auto", "manual", "off")


def sign_v3(client_secret: str, method: str, uri: str, body: bytes | str, timestamp: str) -> str:
    raw = body.encode() if isinstance(body, str) else body
    message = method.encode() + uri.encode() + raw + timestamp.encode()
    return base64.b64encode(hmac.new(client_secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_v1(client_secret: str, body: bytes | str) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return hashlib.sha256(client_secret.encode() + raw).hexdigest()


def sign_v2(client_secret: str, method: str, uri: str, body: bytes | str) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return hashlib.sha256(client_secret.encode() + method.encode() + uri.encode() + raw).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One POST of a batch to a target."""

    target: str
    event_ids: tuple[int, ...]
    attempt: int
    status: int | None
    error: str | None
    duplicate: bool
    body: bytes
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Batch:
    target: str
    events: list[dict[str, Any]]
    attempt: int = 0
    due: float = 0.0


class Webhooks:
    def __init__(
        self,
        *,
        client_secret: str,
        app_id: int,
        portal_id: int,
        targets: Iterable[str] = (),
        mode: str = "auto",
        batch_size: int = 100,
        retry_delays: Iterable[float] = (0.05, 0.1, 0.2),
        duplicates: bool = False,
        timeout: float = 5.0,
        batch_window: float = 0.02,
        properties: dict[str, Iterable[str]] | None = None,
        subscriptions: Iterable[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.client_secret = client_secret
        self.app_id = app_id
        self.portal_id = portal_id
        self.targets = list(targets)
        self.mode = mode
        self.batch_size = batch_size
        self.retry_delays = tuple(retry_delays)
        self.duplicates = duplicates
        self.timeout = timeout
        self.batch_window = batch_window
        self.properties = {k: set(v) for k, v in properties.items()} if properties is not None else None
        self.subscriptions = set(subscriptions) if subscriptions is not None else None
        self.timestamp_skew_ms = 0  # added to X-HubSpot-Request-Timestamp (negative: a stale signature)
        self.events: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.given_up: list[_Batch] = []
        self._event_ids = itertools.count(1)
        self._subscription_ids: dict[str, int] = {}
        self._cond = threading.Condition()
        self._queues: dict[str, deque[dict[str, Any]]] = {}
        self._retries: list[_Batch] = []
        self._deliver_lock = threading.Lock()
        self._session = requests.Session()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="hubspot-sim-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None
        self._session.close()

    # --------------------------------------------------------------- events
    def on_changes(self, changes: list[Change]) -> None:
        events = [e for e in (self._event(c) for c in changes) if e is not None]
        if not events:
            return
        with self._cond:
            self.events.extend(events)
            if self.mode == "off":
                return
            for target in self.targets:
                self._queues.setdefault(target, deque()).extend(events)
            self._cond.notify_all()

    def _event(self, change: Change) -> dict[str, Any] | None:
        subscription_type = f"{SINGULAR[change.object_type]}.{change.kind}"
        if self.subscriptions is not None and subscription_type not in self.subscriptions:
            return None
        if change.kind == "propertyChange":
            if change.property_name in SYSTEM_PROPERTIES:
                return None
            wanted = None if self.properties is None else self.properties.get(change.object_type, set())
            if wanted is not None and change.property_name not in wanted:
                return None
        event: dict[str, Any] = {
            "eventId": next(self._event_ids),
            "subscriptionId": self._subscription_ids.setdefault(
                subscription_type, 100_000 + len(self._subscription_ids)
            ),
            "portalId": self.portal_id,
            "appId": self.app_id,
            "occurredAt": change.occurred_ms,
            "subscriptionType": subscription_type,
            "attemptNumber": 0,
            "objectId": change.object_id,
            "changeSource": change.source,
            "sourceId": change.source_id,
        }
        if change.kind == "propertyChange":
            event["propertyName"] = change.property_name
            event["propertyValue"] = change.property_value or ""
        elif change.kind == "creation":
            event["changeFlag"] = "NEW"
        else:
            event["changeFlag"] = "DELETED"
        return event

    @property
    def pending(self) -> int:
        """Events queued or waiting for a retry, counted per target."""
        with self._cond:
            return sum(len(q) for q in self._queues.values()) + sum(len(b.events) for b in self._retries)

    # ------------------------------------------------------------- delivery
    def flush(self) -> list[Delivery]:
        """Deliver everything queued now, in this thread, retrying failures inline
        (sleeping the retry delays). Returns the deliveries made."""
        made: list[Delivery] = []
        with self._deliver_lock:
            while True:
                batches = self._take(include_all_retries=True)
                if not batches:
                    return made
                for batch in batches:
                    while True:
                        ok = self._send(batch, made)
                        if ok or batch.attempt >= len(self.retry_delays):
                            if not ok:
                                self.given_up.append(batch)
                            break
                        time.sleep(self.retry_delays[batch.attempt])
                        batch.attempt += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._ready():
                    self._cond.wait(timeout=self._next_due())
                if self._stopping:
                    return
            if self.batch_window > 0:
                time.sleep(self.batch_window)
            with self._deliver_lock:
                for batch in self._take(include_all_retries=False):
                    if self._send(batch, []):
                        continue
                    if batch.attempt >= len(self.retry_delays):
                        self.given_up.append(batch)
                        continue
                    batch.due = time.monotonic() + self.retry_delays[batch.attempt]
                    batch.attempt += 1
                    with self._cond:
                        self._retries.append(batch)

    def _ready(self) -> bool:
        queued = self.mode == "auto" and any(self._queues.values())
        now = time.monotonic()
        return queued or any(b.due <= now for b in self._retries)

    def _next_due(self) -> float | None:
        if not self._retries:
            return None
        return max(0.0, min(b.due for b in self._retries) - time.monotonic())

    def _take(self, *, include_all_retries: bool) -> list[_Batch]:
        with self._cond:
            now = time.monotonic()
            due = [b for b in self._retries if include_all_retries or b.due <= now]
            self._retries = [b for b in self._retries if b not in due]
            batches = list(due)
            for target, queue in self._queues.items():
                while queue:
                    events = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                    batches.append(_Batch(target, events))
            return batches

    def _send(self, batch: _Batch, made: list[Delivery]) -> bool:
        events = [dict(e, attemptNumber=batch.attempt) for e in batch.events]
        body = json.dumps(events, separators=(",", ":")).encode()
        ok = self._post(batch, body, duplicate=False, made=made)
        if ok and self.duplicates:
            self._post(batch, body, duplicate=True, made=made)
        return ok

    def _post(self, batch: _Batch, body: bytes, *, duplicate: bool, made: list[Delivery]) -> bool:
        timestamp = str(int(time.time() * 1000) + self.timestamp_skew_ms)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature-v3": sign_v3(self.client_secret, "POST", batch.target, body, timestamp),
            "X-HubSpot-Signature": sign_v1(self.client_secret, body),
            "X-HubSpot-Signature-Version": "v1",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = self._session.post(batch.target, data=body, headers=headers, timeout=self.timeout)
            status = response.status_code
            response.close()
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery = Delivery(
            batch.target,
            tuple(e["eventId"] for e in batch.events),
            batch.attempt,
            status,
            error,
            duplicate,
            body,
            headers,
        )
        with self._cond:
            self.deliveries.append(delivery)
        made.append(delivery)
        return delivery.ok

    def reset(self) -> None:
        with self._cond:
            self.events.clear()
            self.deliveries.clear()
            self.given_up.clear()
            self._queues.clear()
            self._retries.clear()
