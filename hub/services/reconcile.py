"""Reconcile: compare every record of the hub and of one connection, repair drift, never duplicate.

For each mapped object type (customers ↔ contacts, subscriptions ↔ deals, …):

1. Read every remote record (the connector's change feed from the beginning; the stored poll cursor does
   not move), every local record, and the connection's links; compare them in memory.
2. A link whose remote record is gone (confirmed by reading it by id) is a **remote deletion**: the link
   goes, the hub's record stays (:func:`hub.services.sync.forget_remote_records`), and the record joins
   the unlinked ones below.
3. **Linked pairs** are planned against the link's fingerprints, exactly as a pull is: remote-only changes
   are applied through the services, hub-only ones pushed, both-sided ones follow the field's policy or
   wait for a person as a conflict. One-way fields are compared with the other side's value as it is
   now, so drift on their destination (an edited ``abohub_mrr`` in the CRM) is repaired too.
4. **Unlinked local records** are matched to unlinked remote ones by the mapping's keys, in the order the
   mapping lists them (email, VAT number, external id): a key value shared by several remote records
   matches none of them (reported as a failure rather than guessed). A match is linked, not created, and
   its fields are synced as a first sync: where the two sides differ the field's policy decides
   (``hub_wins``: the hub; ``remote_wins``: the remote; ``newest_wins``: the later change of the two
   records; ``manual``: a conflict, raised only when the values differ); a side without a value takes the
   other's; a one-way field takes its source's value.
5. **Local records with no match** are created remotely (upserted on the external id) and linked.
6. **Remote-only records** (a CRM's leads that are not customers) are counted and left alone.

Work is carried out in vendor-sized rounds (see :data:`ROUND`). With ``dry_run`` the same comparison
runs and the report says what would happen; nothing is written on either side. A real run records a
``sync.reconciled`` event with the counts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select

from connectors.base import Connector, RemoteRecord
from connectors.errors import ConnectorError
from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.services.associations import associate_subscriptions
from hub.services.connection_status import record_exchange
from hub.services.connections import open_connector
from hub.services.runtime import Runtime
from hub.services.sync import (
    Planned,
    SyncReport,
    actor,
    carry_out,
    create_remote,
    forget_remote_records,
    local_values,
    plan_pair,
    pullable_changes,
)
from hub.store.models import Conflict, Connection, Customer, Link, Subscription
from hub.store.models import Mapping as MappingRow
from mappings import Direction, Mapping, local_match_keys, remote_match_keys

ROUND = 100  # records carried out per round: one vendor batch, and a short wait between apply and link
READ_PAGE = 1000  # remote records asked for per read (the connector pages within it)
LOCAL_READ = 1000  # local records read per query
MAX_REASONS = 200  # failure reasons kept in a report (the count is always exact)
LOCAL_MODELS: dict[str, Any] = {"customer": Customer, "subscription": Subscription}

T = TypeVar("T")


@dataclass
class ObjectReport:
    """What reconcile found and did for one object type (with ``dry_run``: what it would do)."""

    object_type: str
    remote_object: str
    remote_seen: int = 0
    local_seen: int = 0
    already_linked: int = 0
    linked_by_key: dict[str, int] = field(default_factory=dict)  # remote key field → records linked
    created_remotely: int = 0
    updated_remotely: int = 0
    updated_locally: int = 0
    conflicts_raised: int = 0
    conflicts_open: int = 0  # raised before and still waiting for a person: not a new change
    remote_only: int = 0
    remote_deleted: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return (
            sum(self.linked_by_key.values())
            + self.created_remotely
            + self.updated_remotely
            + self.updated_locally
            + self.conflicts_raised
            + self.remote_deleted
        )

    def fail(self, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REASONS:
            self.failures.append(reason)


@dataclass
class ReconcileReport:
    connection_id: str
    dry_run: bool
    objects: list[ObjectReport] = field(default_factory=list)
    associated: int = 0  # subscriptions' remote records newly tied to their customer's
    association_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changes(self) -> int:
        return sum(one.changes for one in self.objects) + self.associated

    @property
    def failed(self) -> int:
        return sum(one.failed for one in self.objects) + len(self.association_failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "connection_id": self.connection_id,
            "dry_run": self.dry_run,
            "changes": self.changes,
            "failed": self.failed,
            "associated": self.associated,
            "association_failures": self.association_failures[:MAX_REASONS],
            "seconds": self.seconds,
            "objects": [{**asdict(one), "changes": one.changes} for one in self.objects],
        }


def reconcile(
    hub: Runtime, connection_id: str, *, dry_run: bool = False, object_types: Sequence[str] | None = None
) -> ReconcileReport:
    """Reconcile every mapped object type of a connection (or those named); see the module docstring."""
    started = time.monotonic()
    with hub.session_factory() as session:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise NotFound(f"no connection {connection_id}")
        if not connection.enabled and not dry_run:
            raise StateConflict(f"connection {connection_id} is disabled: enable it first, or use a dry run")
        rows = session.scalars(
            select(MappingRow)
            .where(MappingRow.connection_id == connection_id)
            .order_by(MappingRow.object_type)
        )
        mappings = [Mapping.load(row.definition) for row in rows]
    if object_types:
        unknown = sorted(set(object_types) - {m.object_type for m in mappings})
        if unknown:
            mapped = ", ".join(m.object_type for m in mappings) or "none"
            raise InvalidRequest(
                "no mapping for that object type",
                fields={"object_types": [f"{name} is not mapped (mapped: {mapped})" for name in unknown]},
            )
        mappings = [m for m in mappings if m.object_type in object_types]
    connector = open_connector(hub.uow(actor(connection_id)), connection_id)
    report = ReconcileReport(connection_id, dry_run)
    try:
        for mapping in mappings:
            report.objects.append(_Reconciler(hub, connection_id, mapping, connector, dry_run).run())
        if not dry_run:
            associations = associate_subscriptions(hub, connection_id, connector)
            report.associated, report.association_failures = associations.associated, associations.errors
    except ConnectorError as error:
        record_exchange(hub, connection_id, "reconciling", error)
        raise
    record_exchange(hub, connection_id, "reconciling")
    report.seconds = round(time.monotonic() - started, 3)
    if not dry_run:
        _record(hub, report)
    return report


def find_connection(hub: Runtime, reference: str) -> str:
    """A connection's id from its id or its exact name (a name shared by several is refused)."""
    with hub.session_factory() as session:
        if session.get(Connection, reference) is not None:
            return reference
        ids = list(session.scalars(select(Connection.id).where(Connection.name == reference)))
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise NotFound(f"no connection with the id or name {reference!r}")
    raise InvalidRequest(
        "several connections have that name", fields={"connection": [f"use one of the ids: {', '.join(ids)}"]}
    )


def _record(hub: Runtime, report: ReconcileReport) -> None:
    summary = report.to_dict()
    for one in summary["objects"]:
        one["failures"] = one["failures"][:20]
    with hub.uow(actor(report.connection_id)) as uow:
        uow.record("sync.reconciled", "connection", report.connection_id, data=summary)
        uow.commit()


class _Reconciler:
    """Reconcile one object type of one connection."""

    def __init__(
        self, hub: Runtime, connection_id: str, mapping: Mapping, connector: Connector, dry_run: bool
    ) -> None:
        self.hub = hub
        self.connection_id = connection_id
        self.mapping = mapping
        self.connector = connector
        self.dry_run = dry_run
        self.report = ObjectReport(mapping.object_type, mapping.remote_object)
        self.one_way = {
            name for fm in mapping.fields if fm.direction is not Direction.BOTH for name in fm.remote
        }
        self.open_conflicts: set[tuple[str, str]] = set()

    def run(self) -> ObjectReport:
        remote = self._read_remote()
        local, links, self.open_conflicts = self._read_local()
        self.report.remote_seen, self.report.local_seen = len(remote), len(local)
        links = self._drop_deleted(links, local, remote)
        linked_remote = {link.remote_id for link in links.values()}
        planned: list[tuple[Planned, dict[str, str]]] = []
        for local_id, link in links.items():
            if local_id in local:
                self.report.already_linked += 1
                fingerprints = {k: v for k, v in link.fingerprints.items() if k not in self.one_way}
                plan = plan_pair(self.mapping, local[local_id], remote[link.remote_id], fingerprints)
                planned.append((Planned(local_id, remote[link.remote_id], plan), dict(link.fingerprints)))
        unlinked_local = {i: values for i, values in local.items() if i not in links}
        unlinked_remote = {i: record for i, record in remote.items() if i not in linked_remote}
        matched, unsure = self._match(unlinked_local, unlinked_remote)
        for local_id, (remote_id, key) in matched.items():
            self.report.linked_by_key[key] = self.report.linked_by_key.get(key, 0) + 1
            plan = plan_pair(self.mapping, local[local_id], remote[remote_id], None)
            planned.append((Planned(local_id, remote[remote_id], plan), {}))
        self.report.remote_only = len(unlinked_remote) - len(matched)
        self._settle(planned, fresh=set(matched))
        self._create([i for i in sorted(unlinked_local) if i not in matched and i not in unsure])
        return self.report

    # -- reading ------------------------------------------------------------------------------------

    def _read_remote(self) -> dict[str, RemoteRecord]:
        records: dict[str, RemoteRecord] = {}
        cursor: str | None = None
        while True:
            page = self.connector.read_changes(self.mapping.remote_object, cursor, limit=READ_PAGE)
            records.update((record.id, record) for record in page.records if not record.archived)
            if not page.has_more or (page.cursor == cursor and not page.records):
                return records
            cursor = page.cursor

    def _read_local(self) -> tuple[dict[str, dict[str, Any]], dict[str, Link], set[tuple[str, str]]]:
        object_type = self.mapping.object_type
        model = LOCAL_MODELS.get(object_type)
        if model is None:
            raise InvalidRequest(f"reconcile does not know the local object type {object_type!r}")
        with self.hub.session_factory() as session:
            ids = list(session.scalars(select(model.id).order_by(model.id)))
            values: dict[str, dict[str, Any]] = {}
            for chunk in _chunks(ids, LOCAL_READ):
                values.update(local_values(session, object_type, chunk))
            links = {
                link.local_id: link
                for link in session.scalars(
                    select(Link).where(
                        Link.connection_id == self.connection_id, Link.object_type == object_type
                    )
                )
            }
            open_conflicts = {
                (local_id, name)
                for local_id, name in session.execute(
                    select(Conflict.local_id, Conflict.field).where(
                        Conflict.connection_id == self.connection_id,
                        Conflict.object_type == object_type,
                        Conflict.status == "open",
                    )
                )
            }
            session.expunge_all()
        return values, links, open_conflicts

    # -- deciding -----------------------------------------------------------------------------------

    def _drop_deleted(
        self, links: dict[str, Link], local: dict[str, Any], remote: dict[str, RemoteRecord]
    ) -> dict[str, Link]:
        """Links whose remote record the full read did not see: read them by id to be sure they are gone."""
        unseen = [link.remote_id for link in links.values() if link.remote_id not in remote]
        if not unseen:
            return links
        found = self.connector.read_many(self.mapping.remote_object, unseen)
        remote.update(found)  # a search index that had not caught up yet
        self.report.remote_seen = len(remote)
        gone = {remote_id for remote_id in unseen if remote_id not in found}
        deleted = [link for link in links.values() if link.remote_id in gone and link.local_id in local]
        self.report.remote_deleted = len(deleted)
        if not self.dry_run and gone:
            forget_remote_records(
                self.hub, self.connection_id, self.mapping.remote_object, sorted(gone), found_by="reconcile"
            )
        return {local_id: link for local_id, link in links.items() if link.remote_id not in gone}

    def _match(
        self, unlinked_local: dict[str, dict[str, Any]], unlinked_remote: dict[str, RemoteRecord]
    ) -> tuple[dict[str, tuple[str, str]], set[str]]:
        """local id → (remote id, the key that matched), trying the mapping's keys in order; and the local
        ids left unlinked because a key value of theirs is shared by several remote records."""
        index: dict[tuple[str, str], list[str]] = defaultdict(list)
        for remote_id, record in sorted(unlinked_remote.items()):
            for key, value in remote_match_keys(self.mapping, record.properties).items():
                index[(key, value)].append(remote_id)
        matched: dict[str, tuple[str, str]] = {}
        unsure: set[str] = set()
        taken: set[str] = set()
        for local_id in sorted(unlinked_local):
            keys = local_match_keys(self.mapping, unlinked_local[local_id])
            shared = []
            for key in self.mapping.keys:
                value = keys.get(key.remote)
                candidates = (
                    [i for i in index.get((key.remote, value), []) if i not in taken] if value else []
                )
                if len(candidates) == 1:
                    matched[local_id] = (candidates[0], key.remote)
                    taken.add(candidates[0])
                    break
                if candidates:
                    shared.append(f"{len(candidates)} {self.mapping.remote_object} share its {key.remote}")
            else:
                if shared:
                    unsure.add(local_id)
                    self.report.fail(f"{local_id}: not linked, {'; '.join(shared)}: make the key unique")
        return matched, unsure

    # -- doing --------------------------------------------------------------------------------------

    def _settle(self, planned: list[tuple[Planned, dict[str, str]]], fresh: set[str]) -> None:
        """Count what each pair needs; outside a dry run carry out those with something to do."""
        work: list[Planned] = []
        for one, stored in planned:
            plan = one.plan
            for error in plan.errors:
                self.report.fail(f"{one.local_id}: {error}")
            raised = [c for c in plan.conflicts if (one.local_id, c.field) not in self.open_conflicts]
            self.report.conflicts_raised += len(raised)
            self.report.conflicts_open += len(plan.conflicts) - len(raised)
            changes = pullable_changes(self.mapping.object_type, plan)
            remembers = {**stored, **plan.fingerprints} != stored
            if one.local_id in fresh or plan.push or changes or raised or remembers:
                work.append(one)
                if self.dry_run:
                    self.report.updated_locally += int(bool(changes))
                    self.report.updated_remotely += int(bool(plan.push))
        if self.dry_run:
            return
        for chunk in _chunks(work, ROUND):
            self._count(carry_out(self.hub, self.connection_id, self.mapping, chunk, self.connector))

    def _create(self, local_ids: list[str]) -> None:
        if self.dry_run:
            self.report.created_remotely += len(local_ids)
            return
        for chunk in _chunks(local_ids, ROUND):
            done = create_remote(self.hub, self.connection_id, self.mapping, chunk, self.connector)
            self.report.created_remotely += done.pushed
            for reason in done.errors:
                self.report.fail(reason)

    def _count(self, done: SyncReport) -> None:
        self.report.updated_locally += done.pulled
        self.report.updated_remotely += done.pushed
        for reason in done.errors:
            self.report.fail(reason)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
