"""The contracts connectors implement.

Two contracts live here:

* :class:`Connector`, the plug-in every external system implements (HubSpot,
  e-conomic, Xero, Stripe, an in-house system…): it declares its name, kind,
  config schema (secret fields marked), capabilities and object types, and
  can check the connection, read changes since a cursor, read one record
  or several, write a batch, archive, and verify and parse a webhook. The sync engine
  drives it; a connector never imports the hub.
* :class:`PaymentGateway`, the port billing needs from any payment gateway:
  charge an amount for an invoice and refund a payment, both idempotent by key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from marshmallow import Schema


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    customer_id: str
    invoice_id: str
    amount: int
    currency: str
    attempt_number: int
    payment_method: str | None = None
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    idempotency_key: str
    payment_reference: str
    amount: int
    currency: str


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class PaymentGateway(Protocol):
    """Port implemented by every payments connector."""

    name: str

    def charge(self, request: ChargeRequest) -> ChargeResult: ...

    def refund(self, request: RefundRequest) -> RefundResult: ...


# --- the connector plug-in contract ---------------------------------------------------------


class Kind(StrEnum):
    CRM = "crm"
    ACCOUNTING = "accounting"
    PAYMENTS = "payments"


class Direction(StrEnum):
    PUSH = "push"  # hub → remote
    PULL = "pull"  # remote → hub
    BOTH = "both"


@dataclass(frozen=True)
class ObjectType:
    """One kind of remote record and the hub object it syncs with."""

    name: str  # the vendor's name, e.g. "contacts"
    local: str  # the hub's object type, e.g. "customer"
    directions: frozenset[Direction]
    keys: tuple[str, ...] = ()  # remote properties that identify a record (for upsert and matching)
    batch_size: int = 100


@dataclass(frozen=True)
class RemoteRecord:
    id: str
    properties: dict[str, Any]
    updated_at: datetime | None = None
    archived: bool = False
    version: str | None = None  # an etag or sync token where the vendor has one


@dataclass(frozen=True)
class Page:
    """Records changed since a cursor, and the cursor to continue from."""

    records: list[RemoteRecord]
    cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class WriteItem:
    local_id: str
    properties: dict[str, Any]
    idempotency_key: str
    remote_id: str | None = None  # None: create, or upsert by ``key``
    key: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WriteResult:
    local_id: str
    remote_id: str | None
    ok: bool
    error: Exception | None = None
    version: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # what the vendor stored, when it says
    # A request carrying this write went unanswered (timed out after it was sent): the vendor may
    # still apply it later, after a newer write of the record too. Whatever ``ok`` says.
    unanswered: bool = False


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str  # the vendor's id, used to store each event once
    object_type: str
    remote_id: str
    action: str  # "created", "updated" or "deleted"
    occurred_at: datetime | None = None
    properties: dict[str, Any] = field(default_factory=dict)  # partial: re-read the record to be sure


class WebhookRejected(Exception):
    """The webhook's signature, timestamp or shape is not acceptable (answer 401, store nothing)."""


@dataclass
class ConnectorContext:
    """What the hub gives a connector: nothing of the hub itself."""

    redis_url: str | None = None
    webhook_url: str | None = None
    # Called with updated credentials (e.g. a refreshed OAuth token) so the hub stores them encrypted.
    save_credentials: Callable[[dict[str, Any]], None] | None = None
    timeout_seconds: float = 30.0


class Connector(ABC):
    """Base class of every connector plug-in (entry-point group ``abohub.connectors``)."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    title: ClassVar[str]
    config_schema: ClassVar[type[Schema]]  # secret fields carry ``metadata={"secret": True}``
    object_types: ClassVar[tuple[ObjectType, ...]]
    capabilities: ClassVar[frozenset[str]] = frozenset()  # e.g. {"webhooks", "batch_upsert", "search"}

    def __init__(self, config: Mapping[str, Any], context: ConnectorContext) -> None:
        self.config = dict(config)
        self.context = context

    @classmethod
    def secret_fields(cls) -> set[str]:
        return {name for name, f in cls.config_schema().fields.items() if f.metadata.get("secret")}

    @classmethod
    def object_type(cls, name: str) -> ObjectType:
        for candidate in cls.object_types:
            if candidate.name == name or candidate.local == name:
                return candidate
        raise KeyError(f"{cls.name} has no object type {name!r}")

    @abstractmethod
    def check(self) -> None:
        """Raise a ``connectors.errors`` error if the connection does not work."""

    @abstractmethod
    def read_changes(self, object_type: str, cursor: str | None, limit: int = 100) -> Page:
        """Records changed since ``cursor`` (None: from the beginning), oldest first."""

    @abstractmethod
    def read(self, object_type: str, remote_id: str) -> RemoteRecord | None:
        """One record, or None if it does not exist (or is archived)."""

    def read_many(self, object_type: str, remote_ids: Sequence[str]) -> dict[str, RemoteRecord]:
        """Several records by id; ids that do not exist (or are archived) are simply absent.

        This default reads one at a time; a connector whose vendor has a batch read overrides it.
        """
        found = {}
        for remote_id in dict.fromkeys(remote_ids):
            record = self.read(object_type, remote_id)
            if record is not None:
                found[remote_id] = record
        return found

    @abstractmethod
    def write_batch(self, object_type: str, items: Sequence[WriteItem]) -> list[WriteResult]:
        """Create, update or upsert; one result per item, in order; never raises for one bad item."""

    @abstractmethod
    def archive(self, object_type: str, remote_ids: Sequence[str]) -> list[WriteResult]:
        """Delete or archive, whichever the vendor offers."""

    def associate(
        self, from_object: str, to_object: str, pairs: Sequence[tuple[str, str]]
    ) -> list[WriteResult]:
        """Relate remote records, e.g. a deal to its contact: one result per (from id, to id), in order,
        ``local_id`` the from id and ``remote_id`` the to id. Doing it again is harmless.

        Only connectors with the ``associations`` capability implement it.
        """
        raise NotImplementedError(f"{self.name} cannot associate records")

    @abstractmethod
    def verify_webhook(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> None:
        """Raise :class:`WebhookRejected` unless the request is authentic and fresh."""

    @abstractmethod
    def parse_webhook(self, body: bytes) -> list[WebhookEvent]:
        """The events in a verified webhook body; :class:`WebhookRejected` if it is malformed."""

    @classmethod
    def default_mappings(cls) -> list[dict[str, Any]]:
        """The mappings a new connection starts with (see ``mappings.schema``)."""
        return []

    @classmethod
    def mapping_templates(cls) -> dict[str, dict[str, Any]]:
        """Named alternatives to a default mapping an admin may choose (e.g. customers as companies)."""
        return {}
