"""Mappings as operators edit them: validated against the connection, saved with an audit trail, previewed.

A mapping is checked twice before it is stored: by ``mappings.schema`` (its own rules: directions,
pipelines, policies) and here, against the connection (the connector has that remote object, syncs it
in those directions, and the local fields exist and may be set from outside). Every problem is named by
its path in the document (``fields.2.policy``, ``remote_object``), the same shape as other API errors.

Saving a definition that changes what is pushed (the remote object, or any pushing entry's fields or
``to_remote`` pipeline) marks every record already linked through this connection dirty, in the same
transaction: the next push job sends each of them what the new mapping makes of it, and only the remote
fields whose value differs from the link's fingerprints (a field new to the mapping is sent once). A
change to pull fields alone pushes nothing; it applies to remote changes read from then on. A disabled
connection marks nothing (nothing may be pushed through it); records changed later are pushed as usual.

One subtlety of two-way fields: their remote value is compared in canonical form,
``to_remote(to_local(remote))``, so a new ``to_remote`` also changes how the remote's value reads. When
the remote already holds a value that means the same (``"DK"`` against a new ``lower``), the engine sees
both sides agree and sends nothing; the preview shows exactly that before anything is saved.

The version of a mapping (its ``version`` column) is 1 when it is created and grows by one with each
saved change; the audit events (``mapping.created``, ``mapping.updated``) keep every version's before
and after.
"""

from __future__ import annotations

import json
from collections import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from connectors.base import Connector
from connectors.base import Direction as RemoteDirection
from connectors.errors import ConnectorError
from hub.domain.errors import InvalidRequest, NotFound
from hub.domain.ids import new_id
from hub.services.connections import connector_class, open_connector
from hub.services.runtime import Runtime
from hub.services.snapshot import jsonable
from hub.services.sync import PULLABLE, local_values
from hub.services.uow import UnitOfWork
from hub.store.models import Connection, Customer, Event, Link, Subscription, SyncState
from hub.store.models import Mapping as MappingRow
from mappings import Mapping, MappingInvalid, Outcome, TransformError, fingerprint, plan_record
from mappings.engine import field_to_remote

# The fields ``hub.services.sync.local_values`` gave a mapping when this was written, per local object
# type. The list there grows; ``known_fields`` adds what it gives today and what the shipped mappings use.
LOCAL_FIELDS: dict[str, frozenset[str]] = {
    "customer": frozenset(
        {
            "id",
            "name",
            "email",
            "country",
            "vat_number",
            "locale",
            "currency",
            "mrr",
            "revenue_state",
            "plan_names",
            "updated_at",
        }
    ),
    "subscription": frozenset(
        {
            "id",
            "status",
            "plan_name",
            "mrr",
            "customer_id",
            "customer_email",
            "currency",
            "current_period_end",
            "updated_at",
        }
    ),
}


_MODELS: dict[str, type[Customer] | type[Subscription]] = {"customer": Customer, "subscription": Subscription}


def known_fields(session: Session, cls: type[Connector], object_type: str) -> frozenset[str] | None:
    """The local fields a mapping of ``object_type`` may use; None for an unknown object type."""
    if object_type not in LOCAL_FIELDS:
        return None
    known = set(LOCAL_FIELDS[object_type])
    for shipped in cls.default_mappings():
        if shipped.get("object_type") == object_type:
            known |= {name for entry in shipped.get("fields", []) for name in _names(entry.get("local"))}
    sample = session.scalar(select(_MODELS[object_type].id).limit(1))
    if sample is not None:
        for values in local_values(session, object_type, [sample]).values():
            known |= set(values)
    return frozenset(known)


@dataclass(frozen=True)
class MappingView:
    id: str
    connection_id: str
    object_type: str
    remote_object: str
    version: int
    definition: dict[str, Any]
    summary: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SaveMapping:
    connection_id: str
    object_type: str
    definition: dict[str, Any]


@dataclass(frozen=True)
class Saved:
    mapping: MappingView
    changed: bool  # False: the same definition was already stored; nothing was written
    requeued: int  # linked records marked dirty because what they push changed


@dataclass(frozen=True)
class Checked:
    """A definition that passed every check, and what saving it would do."""

    definition: dict[str, Any]
    summary: list[str]
    changes_pushed_fields: bool
    would_requeue: int


# --- reading -------------------------------------------------------------------------------------------


def _connection(session: Session, connection_id: str) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise NotFound(f"no connection {connection_id}")
    return connection


def _row(session: Session, connection_id: str, object_type: str) -> MappingRow | None:
    return session.scalar(
        select(MappingRow).where(
            MappingRow.connection_id == connection_id, MappingRow.object_type == object_type
        )
    )


def _summary(definition: abc.Mapping[str, Any]) -> list[str]:
    return [one.describe() for one in Mapping.load(definition).fields]


def _view(session: Session, row: MappingRow) -> MappingView:
    return MappingView(
        id=row.id,
        connection_id=row.connection_id,
        object_type=row.object_type,
        remote_object=str(row.definition.get("remote_object")),
        version=row.version,
        definition=row.definition,
        summary=_summary(row.definition),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_mappings(session: Session, connection_id: str) -> list[MappingView]:
    _connection(session, connection_id)
    rows = session.scalars(
        select(MappingRow).where(MappingRow.connection_id == connection_id).order_by(MappingRow.object_type)
    )
    return [_view(session, row) for row in rows]


def get_mapping(session: Session, connection_id: str, object_type: str) -> MappingView:
    _connection(session, connection_id)
    row = _row(session, connection_id, object_type)
    if row is None:
        raise NotFound(f"connection {connection_id} has no {object_type} mapping")
    return _view(session, row)


# --- checking ------------------------------------------------------------------------------------------


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [one for one in value if isinstance(one, str)]
    return []


def _against_connection(
    session: Session, connection: Connection, object_type: str, document: abc.Mapping[str, Any]
) -> dict[str, list[str]]:
    """What the connection and the hub say about a (possibly malformed) document, by path."""
    problems: dict[str, list[str]] = {}

    def problem(path: str, message: str) -> None:
        problems.setdefault(path, []).append(message)

    cls = connector_class(connection.connector)
    known = known_fields(session, cls, object_type)
    if known is None:
        problem("object_type", f"no local object type {object_type!r}; one of {', '.join(LOCAL_FIELDS)}")
        return problems
    if document.get("object_type") != object_type:
        problem("object_type", f"must be {object_type!r}, the object type this mapping is stored under")
    remote_object = document.get("remote_object")
    offered = next((one for one in cls.object_types if one.name == remote_object), None)
    choices = ", ".join(f"{one.name} ({one.local})" for one in cls.object_types)
    if isinstance(remote_object, str) and offered is None:
        problem("remote_object", f"{cls.title} has no object {remote_object!r}; it has {choices}")
    elif offered is not None and offered.local != object_type:
        problem("remote_object", f"{cls.title} syncs {offered.name} with {offered.local}, not {object_type}")
    pulls_allowed = offered is None or bool(offered.directions & {RemoteDirection.PULL, RemoteDirection.BOTH})
    pushes_allowed = offered is None or bool(
        offered.directions & {RemoteDirection.PUSH, RemoteDirection.BOTH}
    )
    settable = PULLABLE.get(object_type, set())
    entries = document.get("fields")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, abc.Mapping):
            continue
        local = _names(entry.get("local"))
        for name in local:
            if name not in known:
                problem(
                    f"fields.{index}.local", f"{object_type} has no field {name!r}; it has {_list(known)}"
                )
        direction = entry.get("direction")
        if direction in ("pull", "both"):
            if not pulls_allowed:
                problem(f"fields.{index}.direction", f"{cls.title} {remote_object} can only be pushed to")
            fixed = [name for name in local if name in known and name not in settable]
            if fixed:
                problem(
                    f"fields.{index}.direction",
                    f"{', '.join(fixed)} is kept by the hub and cannot be set from outside; use push "
                    f"(fields a pull may set: {_list(settable) or 'none'})",
                )
        if direction in ("push", "both") and not pushes_allowed:
            problem(f"fields.{index}.direction", f"{cls.title} {remote_object} can only be pulled from")
    keys = document.get("key")
    for index, key in enumerate(keys if isinstance(keys, list) else [keys] if keys else []):
        if isinstance(key, abc.Mapping) and isinstance(key.get("local"), str) and key["local"] not in known:
            problem(f"key.{index}.local", f"{object_type} has no field {key['local']!r}")
    current = _row(session, connection.id, object_type)
    if current is not None and isinstance(remote_object, str):
        before = current.definition.get("remote_object")
        linked = _linked_count(session, connection.id, object_type)
        if remote_object != before and linked:
            problem(
                "remote_object",
                f"{linked} {object_type} record(s) are linked to {before}; a mapping cannot move them to "
                f"{remote_object} (make a new connection instead)",
            )
    return problems


def _list(names: abc.Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _linked_count(session: Session, connection_id: str, object_type: str) -> int:
    return int(
        session.scalar(
            select(func.count()).where(Link.connection_id == connection_id, Link.object_type == object_type)
        )
        or 0
    )


def _load(
    session: Session, connection: Connection, object_type: str, definition: abc.Mapping[str, Any]
) -> Mapping:
    """The checked mapping, or ``MappingInvalid`` with every problem found, by path."""
    if not isinstance(definition, abc.Mapping):
        raise MappingInvalid("a mapping is a JSON object", fields={"_schema": ["must be a JSON object"]})
    document = {"object_type": object_type, **definition}
    problems = _against_connection(session, connection, object_type, document)
    try:
        mapping = Mapping.load(document)
    except MappingInvalid as invalid:
        for path, messages in problems.items():
            invalid.fields.setdefault(path, []).extend(messages)
        raise
    if problems:
        lines = " | ".join(f"{path}: {'; '.join(messages)}" for path, messages in problems.items())
        raise MappingInvalid(
            f"invalid mapping {object_type} ↔ {mapping.remote_object}: {lines}", fields=problems
        )
    return mapping


def _pushed_shape(definition: abc.Mapping[str, Any] | None) -> str:
    """What decides the pushed values: the remote object and each pushing entry's fields and pipeline."""
    if not definition:
        return ""
    mapping = Mapping.load(definition)
    entries = sorted(
        json.dumps([list(fm.local), list(fm.remote), [s.dump() for s in fm.to_remote]], default=str)
        for fm in mapping.fields
        if fm.pushes
    )
    return json.dumps([mapping.remote_object, entries])


def check_mapping(session: Session, cmd: SaveMapping) -> Checked:
    """Validate without saving; says whether saving would re-push linked records, and how many."""
    connection = _connection(session, cmd.connection_id)
    mapping = _load(session, connection, cmd.object_type, cmd.definition)
    current = _row(session, cmd.connection_id, cmd.object_type)
    changes = _pushed_shape(current.definition if current else None) != _pushed_shape(mapping.dump())
    requeue = changes and current is not None and connection.enabled
    return Checked(
        definition=mapping.dump(),
        summary=[one.describe() for one in mapping.fields],
        changes_pushed_fields=changes,
        would_requeue=_linked_count(session, connection.id, cmd.object_type) if requeue else 0,
    )


# --- saving --------------------------------------------------------------------------------------------


def save_mapping(cmd: SaveMapping, uow: UnitOfWork) -> Saved:
    """Create or replace a mapping (validated), audited with before and after; re-push what it changes."""
    with uow:
        session = uow.session
        connection = session.get(Connection, cmd.connection_id, with_for_update=True)
        if connection is None:
            raise NotFound(f"no connection {cmd.connection_id}")
        definition = _load(session, connection, cmd.object_type, cmd.definition).dump()
        row = _row(session, connection.id, cmd.object_type)
        if row is not None and row.definition == definition:
            return Saved(_view(session, row), changed=False, requeued=0)
        before = row.definition if row is not None else None
        if row is None:
            row = MappingRow(
                id=new_id("map"),
                connection_id=connection.id,
                object_type=cmd.object_type,
                definition=definition,
                version=1,
                created_at=uow.now,
                updated_at=uow.now,
            )
            session.add(row)
        else:
            row.version += 1
            row.definition = definition
            row.updated_at = uow.now
        repush = (
            before is not None and connection.enabled and _pushed_shape(before) != _pushed_shape(definition)
        )
        uow.record(
            "mapping.created" if before is None else "mapping.updated",
            "mapping",
            row.id,
            data={
                "connection_id": connection.id,
                "object_type": cmd.object_type,
                "version": row.version,
                "before": before,
                "after": definition,
                "repush": repush,
            },
        )
        uow.flush_events()
        requeued = _mark_linked_dirty(session, connection.id, cmd.object_type, uow.now) if repush else 0
        uow.commit()
        return Saved(_view(session, row), changed=True, requeued=requeued)


def _mark_linked_dirty(session: Session, connection_id: str, object_type: str, now: datetime) -> int:
    """Every record linked through the connection gets pushed again (only what differs is sent)."""
    event_id = int(session.scalar(select(func.max(Event.id))) or 0)
    session.execute(
        update(SyncState)
        .where(
            SyncState.connection_id == connection_id,
            SyncState.object_type == object_type,
            SyncState.wanted_event_id < event_id,
        )
        .values(wanted_event_id=event_id)
    )
    dirty = select(SyncState.local_id).where(
        SyncState.connection_id == connection_id, SyncState.object_type == object_type
    )
    fresh = list(
        session.scalars(
            select(Link.local_id).where(
                Link.connection_id == connection_id,
                Link.object_type == object_type,
                Link.local_id.not_in(dirty),
            )
        )
    )
    if fresh:
        session.execute(
            insert(SyncState),
            [
                {
                    "connection_id": connection_id,
                    "object_type": object_type,
                    "local_id": local_id,
                    "wanted_event_id": event_id,
                    "dirty_since": now,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for local_id in fresh
            ],
        )
    return _linked_count(session, connection_id, object_type)


# --- preview -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewMapping:
    connection_id: str
    object_type: str
    local_id: str
    definition: dict[str, Any] | None = None  # a candidate; None: the stored mapping


@dataclass(frozen=True)
class Preview:
    """What a mapping makes of one real record, computed without writing anything anywhere."""

    connection_id: str
    object_type: str
    local_id: str
    mapping: str  # "stored" or "candidate"
    local: dict[str, Any]
    properties: dict[str, Any]  # every pushing field: what a push of the whole record would send
    errors: list[dict[str, str]]  # fields whose transform fails on this record
    linked: bool
    remote_id: str | None = None
    remote: dict[str, Any] | None = None  # the linked remote record's mapped fields, read now
    remote_error: dict[str, Any] | None = None
    differences: list[dict[str, Any]] = field(default_factory=list)  # remote field, hub's and remote's value
    sync: dict[str, Any] = field(default_factory=dict)  # what a sync would push, apply and hold now


def preview_mapping(cmd: PreviewMapping, hub: Runtime, actor: str) -> Preview:
    with hub.session_factory() as session:
        connection = _connection(session, cmd.connection_id)
        if cmd.definition is not None:
            mapping = _load(session, connection, cmd.object_type, cmd.definition)
        else:
            row = _row(session, connection.id, cmd.object_type)
            if row is None:
                raise NotFound(
                    f"connection {connection.id} has no {cmd.object_type} mapping; give a definition"
                )
            mapping = Mapping.load(row.definition)
        if cmd.object_type not in LOCAL_FIELDS:
            raise InvalidRequest(f"no local object type {cmd.object_type!r}")
        local = local_values(session, cmd.object_type, [cmd.local_id]).get(cmd.local_id)
        if local is None:
            message = f"no {cmd.object_type} {cmd.local_id}"
            raise InvalidRequest(message, fields={"local_id": [message]})
        link = session.scalar(
            select(Link).where(
                Link.connection_id == connection.id,
                Link.object_type == cmd.object_type,
                Link.local_id == cmd.local_id,
            )
        )
        session.expunge_all()
    properties, errors = _pushed(mapping, local)
    preview = Preview(
        connection_id=connection.id,
        object_type=cmd.object_type,
        local_id=cmd.local_id,
        mapping="stored" if cmd.definition is None else "candidate",
        local=jsonable(local),
        properties=jsonable(properties),
        errors=errors,
        linked=link is not None,
        remote_id=link.remote_id if link else None,
    )
    remote_record = None
    if link is not None:
        try:
            remote_record = open_connector(hub.uow(actor), connection.id).read(
                link.remote_object, link.remote_id
            )
        except ConnectorError as error:
            preview = _with(preview, remote_error={"type": type(error).__name__, "message": str(error)})
        else:
            if remote_record is None:
                gone = f"{link.remote_object} {link.remote_id} no longer exists (or is archived) remotely"
                preview = _with(preview, remote_error={"type": "NotFound", "message": gone})
    if remote_record is not None:
        mapped = {name: remote_record.properties.get(name) for name in mapping.remote_fields}
        preview = _with(preview, remote=jsonable(mapped))
    return _with(preview, **_compare(mapping, local, link, remote_record))


def _with(preview: Preview, **changes: Any) -> Preview:
    return Preview(**{**preview.__dict__, **changes})


def _pushed(mapping: Mapping, local: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    properties: dict[str, Any] = {}
    errors = []
    for fm in mapping.fields:
        if not fm.pushes or not all(name in local for name in fm.local):
            continue
        try:
            properties.update(field_to_remote(fm, local))
        except TransformError as error:
            errors.append({"field": fm.name, "message": str(error)})
    return properties, errors


def _compare(mapping: Mapping, local: dict[str, Any], link: Link | None, remote: Any) -> dict[str, Any]:
    """The fields that differ now, and the plan a sync would follow (pure: nothing is written)."""
    differences = []
    if remote is not None:
        # Compared like reconcile does (no fingerprints): each side's value, in remote form.
        for one in plan_record(mapping, local, remote.properties).fields:
            for name in sorted(set(one.hub) & set(one.remote)):
                if fingerprint(one.hub[name]) != fingerprint(one.remote[name]):
                    differences.append(
                        {
                            "field": one.field,
                            "remote_field": name,
                            "hub": one.hub[name],
                            "remote": one.remote[name],
                        }
                    )
    plan = plan_record(
        mapping,
        local,
        remote.properties if remote is not None else None,
        link.fingerprints if link is not None else None,
        hub_changed_at=local.get("updated_at"),
        remote_changed_at=remote.updated_at if remote is not None else None,
    )
    settable = PULLABLE.get(mapping.object_type, set())
    sync = {
        "push": plan.push,
        "apply": {k: v for k, v in plan.apply.items() if k in settable},
        "conflicts": [
            {"field": c.field, "hub_value": c.hub_value, "remote_value": c.remote_value, "reason": c.reason}
            for c in plan.conflicts
        ],
        "fields": [
            {"field": one.field, "outcome": one.outcome.value, "reason": one.reason}
            for one in plan.fields
            if one.outcome is not Outcome.UNCHANGED or link is not None
        ],
    }
    return {"differences": jsonable(differences), "sync": jsonable(sync)}
