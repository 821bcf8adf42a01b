"""The nightly reconcile of every enabled connection (see :mod:`hub.services.reconcile`)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from connectors.errors import ConnectorError
from hub.domain.errors import AbohubError
from hub.services.reconcile import reconcile
from hub.services.runtime import Runtime
from hub.store.models import Connection
from jobs.registry import job

log = logging.getLogger(__name__)


class ReconcileFailed(RuntimeError):
    """Some connections could not be reconciled; the job is retried (reconcile is idempotent)."""


RECONCILE = "reconcile_connections"


@job(RECONCILE)
def reconcile_connections(hub: Runtime, **_: Any) -> dict[str, Any]:
    """Reconcile each enabled connection in turn; one that cannot be reached does not stop the others."""
    with hub.session_factory() as session:
        ids = list(
            session.scalars(select(Connection.id).where(Connection.enabled.is_(True)).order_by(Connection.id))
        )
    done: dict[str, Any] = {}
    unreachable: dict[str, str] = {}
    for connection_id in ids:
        try:
            report = reconcile(hub, connection_id)
        except (ConnectorError, AbohubError) as error:
            log.warning("reconcile of connection %s failed: %s", connection_id, error)
            unreachable[connection_id] = str(error)
            continue
        done[connection_id] = {"changes": report.changes, "failed": report.failed, "seconds": report.seconds}
        log.info(
            "reconciled connection %s: %d change(s), %d failure(s) in %.1f s",
            connection_id,
            report.changes,
            report.failed,
            report.seconds,
        )
    if unreachable:
        raise ReconcileFailed(
            "could not reconcile " + "; ".join(f"{cid}: {reason}" for cid, reason in unreachable.items())
        )
    return done
