"""Resolving a conflict: a person picks the hub's value, the remote value, or an edited one.

The choice is applied where it is missing and sent where it is missing, so both
sides end up equal and the link remembers that value: the hub's value is pushed
to the remote; the remote value is applied to the hub; an edited value is saved
in the hub first and then pushed. Every resolution is in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from connectors.base import WriteItem
from hub.domain.errors import InvalidRequest, NotFound, StateConflict
from hub.services.connections import open_connector
from hub.services.customers import UpdateCustomer, update_customer
from hub.services.runtime import Runtime
from hub.services.sync import PULLABLE, load_mapping, local_values, save_link
from hub.store.models import Conflict, Link
from mappings import plan_record

CHOICES = ("hub", "remote", "value")


@dataclass(frozen=True)
class ResolveConflict:
    conflict_id: str
    choice: str  # "hub", "remote" or "value"
    value: dict[str, Any] | None = (
        None  # with "value": the local field(s) to set, e.g. {"name": "Karen Olsen"}
    )


def resolve_conflict(cmd: ResolveConflict, hub: Runtime, actor: str) -> Conflict:
    if cmd.choice not in CHOICES:
        raise InvalidRequest("unknown choice", fields={"choice": [f"must be one of {', '.join(CHOICES)}"]})
    with hub.session_factory() as session:
        conflict = session.get(Conflict, cmd.conflict_id)
        if conflict is None:
            raise NotFound(f"no conflict {cmd.conflict_id}")
        if conflict.status != "open":
            raise StateConflict("the conflict is already resolved")
        mapping = load_mapping(session, conflict.connection_id, conflict.object_type)
        link = session.scalar(
            select(Link).where(
                Link.connection_id == conflict.connection_id,
                Link.object_type == conflict.object_type,
                Link.local_id == conflict.local_id,
            )
        )
        session.expunge_all()
    if mapping is None or link is None:
        raise StateConflict("the record is no longer synced with this connection")
    if cmd.choice == "value":
        allowed = PULLABLE.get(conflict.object_type, set()) & set(mapping.field(conflict.field).local)
        if not cmd.value or set(cmd.value) - allowed:
            raise InvalidRequest(
                "give the value of the conflicting field",
                fields={"value": [f"must set {', '.join(sorted(allowed)) or 'nothing'}"]},
            )
        update_customer(UpdateCustomer(conflict.local_id, dict(cmd.value)), hub.uow(actor))
    connector = open_connector(hub.uow(actor), conflict.connection_id)
    remote = connector.read(mapping.remote_object, link.remote_id)
    with hub.session_factory() as session:
        local = local_values(session, conflict.object_type, [conflict.local_id]).get(conflict.local_id)
    if local is None or remote is None:
        raise StateConflict("the record is gone on one side; reconcile the connection")
    side = "remote" if cmd.choice == "remote" else "hub"
    plan = plan_record(
        mapping, local, remote.properties, link.fingerprints, resolutions={conflict.field: side}
    )
    changes = {k: v for k, v in plan.apply.items() if k in PULLABLE.get(conflict.object_type, set())}
    if changes:
        update_customer(UpdateCustomer(conflict.local_id, changes), hub.uow(actor))
    if plan.push:
        [result] = connector.write_batch(
            mapping.remote_object,
            [
                WriteItem(
                    local_id=conflict.local_id,
                    properties=plan.push,
                    remote_id=link.remote_id,
                    idempotency_key=f"conflict:{conflict.id}",
                )
            ],
        )
        if not result.ok:
            raise StateConflict(f"the remote side refused the resolved value: {result.error}")
    now = hub.clock.now()
    with hub.session_factory() as session, session.begin():
        save_link(
            session,
            conflict.connection_id,
            conflict.object_type,
            mapping.remote_object,
            conflict.local_id,
            link.remote_id,
            plan.fingerprints,
            now,
            pushed=bool(plan.push),
        )
        held = session.get(Conflict, conflict.id, with_for_update=True)
        assert held is not None
        held.status, held.resolution, held.resolved_by, held.resolved_at = "resolved", cmd.choice, actor, now
        fields = mapping.field(conflict.field).local
        held.resolved_value = {k: local.get(k) for k in fields} if side == "hub" else dict(changes)
        session.flush()
        session.expunge(held)
    with hub.uow(actor) as uow:
        uow.record(
            "conflict.resolved",
            "conflict",
            conflict.id,
            customer_id=conflict.local_id if conflict.object_type == "customer" else None,
            data={
                "field": conflict.field,
                "choice": cmd.choice,
                "value": held.resolved_value,
                "connection_id": conflict.connection_id,
            },
        )
        uow.commit()
    return held
