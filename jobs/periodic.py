"""The periodic job functions the runtime owns (scheduled by :data:`jobs.schedule.SCHEDULE`).

``poll_connections`` is scheduled too; it is registered by :mod:`jobs.sync_jobs`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from hub.bootstrap import Hub
from hub.services.billing import RunBilling
from hub.services.billing import run_billing as billing_run
from jobs import relay
from jobs.registry import job
from jobs.runtime import make_queue

log = logging.getLogger(__name__)

MAX_RELAY_BATCHES = 20  # then the next slot carries on: one run stays short


@job("relay_outbox")
def relay_outbox(hub: Hub) -> dict[str, int]:
    """Turn committed outbox rows into push work (see :mod:`jobs.relay`), batch after batch."""
    queue = make_queue(hub)
    total = relay.RelayReport()
    for _ in range(MAX_RELAY_BATCHES):
        report = relay.relay(hub, queue)
        total.relayed += report.relayed
        total.marked += report.marked
        total.enqueued += report.enqueued
        if report.relayed == 0:
            break
    if total.relayed:
        log.info(
            "relayed %d outbox row(s): %d record(s) marked dirty, %d job(s) queued",
            total.relayed,
            total.marked,
            total.enqueued,
        )
    return asdict(total)


@job("repair_sync_states")
def repair_sync_states(hub: Hub) -> int:
    """Queue push jobs for records whose retry is due, and again for overdue ones (lost job, dead
    worker, Redis restart)."""
    delay = timedelta(seconds=hub.settings.sync_repair_delay_seconds)
    count = relay.repair(hub, make_queue(hub), older_than=delay)
    if count:
        log.info("repair queued %d push job(s) for due retries or overdue records", count)
    return count


@job("run_billing")
def run_billing(hub: Hub) -> dict[str, Any]:
    """Renew due subscriptions, end trials, apply scheduled changes, collect due payments."""
    report = billing_run(RunBilling(), hub.uow("job:billing"))
    log.info("billing run: %d renewed, %d invoice(s)", report.renewed, report.invoices)
    return asdict(report)
