"""Records of contacts, companies and deals in memory, with unique keys and change notifications.

Every write goes through :class:`Store` under one re-entrant lock, so a batch
is applied atomically with respect to other requests. Each change that alters
a record tells the listeners (the webhook dispatcher) what changed, and who
changed it (``INTEGRATION`` for API calls, ``CRM_UI`` for a test's "UI" edit).
Associations between records live here too; archiving a record drops them.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.hubspot.sim import errors
from connectors.hubspot.sim.associations import Associations
from connectors.hubspot.sim.clock import SimClock, iso
from connectors.hubspot.sim.schema import LABEL, MODIFIED, OBJECT_TYPES, SINGULAR, Schema

_ID_START = {"contacts": 1001, "companies": 20_000_000_001, "deals": 30_000_000_001}
SYSTEM_PROPERTIES = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"})


@dataclass
class Record:
    object_type: str
    id: int
    props: dict[str, str]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None
    # (monotonic time it becomes searchable, copy) — kept only when search lags.
    history: list[tuple[float, Record]] = field(default_factory=list, repr=False)

    def value(self, name: str) -> str | None:
        if name == "hs_object_id":
            return str(self.id)
        if name == "createdate":
            return iso(self.created_ms)
        if name == MODIFIED[self.object_type]:
            return iso(self.updated_ms)
        return self.props.get(name)

    def snapshot(self) -> Record:
        return replace(self, props=dict(self.props), history=[])

    def to_json(self, names: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id),
            "properties": {name: self.value(name) for name in names},
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "archived": self.archived,
        }
        if self.archived and self.archived_ms is not None:
            out["archivedAt"] = iso(self.archived_ms)
        return out


@dataclass(frozen=True)
class Change:
    """What a webhook subscription hears about: ``creation``, ``propertyChange`` or ``deletion``."""

    kind: str
    object_type: str
    object_id: int
    occurred_ms: int
    source: str
    source_id: str
    property_name: str | None = None
    property_value: str | None = None


class Store:
    def __init__(self, schema: Schema, clock: SimClock, search_lag: float = 0.0) -> None:
        self.schema = schema
        self.clock = clock
        self.search_lag = search_lag
        self.lock = threading.RLock()
        self.records: dict[str, dict[int, Record]] = {t: {} for t in OBJECT_TYPES}
        self._ids = {t: itertools.count(_ID_START[t]) for t in OBJECT_TYPES}
        self._unique: dict[tuple[str, str], dict[str, int]] = {}
        self.listeners: list[Callable[[list[Change]], None]] = []
        self.writes: Counter[tuple[str, str]] = Counter()
        self.associations = Associations()

    # ----------------------------------------------------------------- reading
    def get(self, object_type: str, object_id: int | str, *, archived: bool = False) -> Record | None:
        try:
            key = int(object_id)
        except (TypeError, ValueError):
            return None
        record = self.records[object_type].get(key)
        if record is None or record.archived != archived:
            return None
        return record

    def find(
        self, object_type: str, id_value: str, id_property: str | None, *, archived: bool = False
    ) -> Record | None:
        """By record id, or by the value of a unique property (``idProperty``)."""
        if id_property in (None, "", "hs_object_id"):
            return self.get(object_type, id_value, archived=archived)
        self.require_unique(object_type, id_property)
        if archived:
            return next(
                (
                    r
                    for r in self.records[object_type].values()
                    if r.archived and r.value(id_property) == id_value
                ),
                None,
            )
        key = id_value.strip().lower() if id_property == "email" else id_value
        found = self._unique.get((object_type, id_property), {}).get(key)
        return None if found is None else self.records[object_type][found]

    def require_unique(self, object_type: str, id_property: str) -> None:
        if self.schema.get(object_type, id_property) is None:
            raise errors.bad_request(f'Property "{id_property}" does not exist')
        if not self.schema.is_unique(object_type, id_property):
            raise errors.bad_request(
                f"Unable to perform update/upsert by non-unique {_type_id(object_type)} property "
                f"{id_property} in portal ID {self.schema.portal_id}"
            )

    def live(self, object_type: str) -> list[Record]:
        return [r for r in self.records[object_type].values() if not r.archived]

    def searchable(self, object_type: str) -> list[Record]:
        """What the search index sees: with a lag, each record as it was ``search_lag`` seconds ago."""
        if self.search_lag <= 0:
            return self.live(object_type)
        horizon = time.monotonic() - self.search_lag
        out = []
        for record in self.records[object_type].values():
            visible = [snap for t, snap in record.history if t <= horizon]
            if visible and not visible[-1].archived:
                out.append(visible[-1])
        return out

    # ----------------------------------------------------------------- writing
    def create(
        self,
        object_type: str,
        props: dict[str, str | None],
        *,
        source: str,
        source_id: str,
        at: int | None = None,
        notify: bool = True,
    ) -> Record:
        """Create from already-normalized values."""
        with self.lock:
            values = {k: v for k, v in props.items() if v is not None}
            self._check_unique(object_type, values, None)
            now = self.clock.now_ms() if at is None else at
            record = Record(object_type, next(self._ids[object_type]), values, now, now)
            self.records[object_type][record.id] = record
            self._index(record, {}, values)
            self._remember(record)
            if source == "INTEGRATION":
                self.writes[(object_type, str(record.id))] += 1
            if notify:
                changes = [Change("creation", object_type, record.id, now, source, source_id)]
                changes += [
                    Change("propertyChange", object_type, record.id, now, source, source_id, name, value)
                    for name, value in values.items()
                ]
                self._notify(changes)
            return record

    def update(
        self,
        record: Record,
        props: dict[str, str | None],
        *,
        source: str,
        source_id: str,
        at: int | None = None,
    ) -> Record:
        """Apply normalized values; a change that changes nothing moves no timestamp and sends no event."""
        with self.lock:
            if source == "INTEGRATION":
                self.writes[(record.object_type, str(record.id))] += 1
            changed = {k: v for k, v in props.items() if record.props.get(k) != v}
            if not changed:
                return record
            self._check_unique(
                record.object_type, {k: v for k, v in changed.items() if v is not None}, record.id
            )
            before = dict(record.props)
            for name, value in changed.items():
                if value is None:
                    record.props.pop(name, None)
                else:
                    record.props[name] = value
            now = self.clock.now_ms() if at is None else at
            record.updated_ms = now
            self._index(record, before, record.props)
            self._remember(record)
            self._notify(
                [
                    Change(
                        "propertyChange", record.object_type, record.id, now, source, source_id, k, v or ""
                    )
                    for k, v in changed.items()
                ]
            )
            return record

    def archive(self, record: Record, *, source: str, source_id: str, at: int | None = None) -> None:
        with self.lock:
            if source == "INTEGRATION":
                self.writes[(record.object_type, str(record.id))] += 1
            if record.archived:
                return
            now = self.clock.now_ms() if at is None else at
            self._index(record, record.props, {})
            self.associations.drop((record.object_type, record.id))
            record.archived = True
            record.archived_ms = now
            record.updated_ms = now
            self._remember(record)
            self._notify([Change("deletion", record.object_type, record.id, now, source, source_id)])

    def clear(self) -> None:
        """Forget every record (ids keep counting up, as HubSpot never reuses one)."""
        with self.lock:
            for records in self.records.values():
                records.clear()
            self._unique.clear()
            self.writes.clear()
            self.associations.clear()

    # ---------------------------------------------------------------- internals
    def _check_unique(self, object_type: str, values: dict[str, str], own_id: int | None) -> None:
        for name, value in values.items():
            if not self.schema.is_unique(object_type, name):
                continue
            existing = self._unique.get((object_type, name), {}).get(value)
            if existing is not None and existing != own_id:
                if object_type == "contacts" and name == "email":
                    raise errors.conflict(f"Contact already exists. Existing ID: {existing}")
                raise errors.conflict(
                    f"A {SINGULAR[object_type]} with {name} '{value}' already exists. Existing ID: {existing}"
                )

    def _index(self, record: Record, before: dict[str, str], after: dict[str, str]) -> None:
        for name in set(before) | set(after):
            if not self.schema.is_unique(record.object_type, name):
                continue
            index = self._unique.setdefault((record.object_type, name), {})
            old, new = before.get(name), after.get(name)
            if old is not None and index.get(old) == record.id:
                del index[old]
            if new is not None:
                index[new] = record.id

    def _remember(self, record: Record) -> None:
        if self.search_lag <= 0:
            return
        now = time.monotonic()
        record.history.append((now, record.snapshot()))
        horizon = now - self.search_lag
        while len(record.history) > 1 and record.history[1][0] <= horizon:
            record.history.pop(0)

    def _notify(self, changes: list[Change]) -> None:
        for listener in self.listeners:
            listener(changes)


def _type_id(object_type: str) -> str:
    return {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}[object_type]


def label(object_type: str) -> str:
    return LABEL[object_type]
