"""Associations: a subscription's remote record tied to its customer's (a HubSpot deal to its contact).

A subscription belongs to its customer; where a connection syncs both and its connector can relate
records (the ``associations`` capability), the subscription's remote record is associated with the
customer's remote record. Each subscription link remembers the remote record it was last associated
with (``links.associated_to``, ``"contacts:1001"``), so an association is made once, and made again
only when the customer's link moves to another remote record.

It runs after every push of subscriptions or customers (whichever of the two went first, the second
completes the pair) and at reconcile; the pairs still to do are found in one query. A pair that fails
is left for the next run: associating is idempotent at the vendor.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from connectors.base import Connector
from connectors.errors import ConnectorError
from hub.services.runtime import Runtime
from hub.store.models import Link, Subscription

log = logging.getLogger(__name__)
CAPABILITY = "associations"


@dataclass
class AssociationReport:
    associated: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def associate_subscriptions(hub: Runtime, connection_id: str, connector: Connector) -> AssociationReport:
    """Associate every linked subscription of the connection not yet associated with its customer's record."""
    report = AssociationReport()
    if CAPABILITY not in connector.capabilities:
        return report
    with hub.session_factory() as session:
        wanted = _unassociated(session, connection_id)
    groups: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
    for link_id, from_object, from_id, to_object, to_id in wanted:
        groups[(from_object, to_object)].append((link_id, from_id, to_id))
    done: dict[int, str] = {}
    for (from_object, to_object), rows in groups.items():
        try:
            results = connector.associate(from_object, to_object, [(a, b) for _, a, b in rows])
        except (ConnectorError, NotImplementedError, ValueError) as error:
            report.failed += len(rows)
            report.errors.append(f"{from_object} → {to_object}: {error}")
            continue
        for (link_id, _, to_id), result in zip(rows, results, strict=True):
            if result.ok:
                done[link_id] = f"{to_object}:{to_id}"
            else:
                report.failed += 1
                report.errors.append(f"{result.local_id} → {to_id}: {result.error}")
    if done:
        with hub.session_factory() as session, session.begin():
            for link in session.scalars(select(Link).where(Link.id.in_(list(done))).with_for_update()):
                link.associated_to = done[link.id]
    report.associated = len(done)
    if report.failed:
        log.warning("%d association(s) failed on %s: %s", report.failed, connection_id, report.errors[:3])
    return report


def _unassociated(session: Session, connection_id: str) -> list[tuple[int, str, str, str, str]]:
    """(subscription link id, its remote object and id, the customer's remote object and id) to do."""
    mine, theirs = aliased(Link), aliased(Link)
    target = theirs.remote_object + ":" + theirs.remote_id
    query = (
        select(mine.id, mine.remote_object, mine.remote_id, theirs.remote_object, theirs.remote_id)
        .join(Subscription, Subscription.id == mine.local_id)
        .join(
            theirs,
            (theirs.connection_id == mine.connection_id)
            & (theirs.object_type == "customer")
            & (theirs.local_id == Subscription.customer_id),
        )
        .where(
            mine.connection_id == connection_id,
            mine.object_type == "subscription",
            or_(mine.associated_to.is_(None), mine.associated_to != target),
        )
        .order_by(mine.id)
    )
    return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]
