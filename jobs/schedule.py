"""Periodic jobs, declared as data, and the scheduler that enqueues them.

Each :class:`Periodic` runs its job function once per *slot*: the slots of a
periodic job are the intervals ``[epoch + offset + k·every, … + (k+1)·every)``.
The scheduler enqueues the current slot's run with the id
``periodic:{name}:{k}`` through the queue's ``enqueue_once``, which queues an
id at most once however often it is asked. So two schedulers at once, or a
scheduler restarted within a slot, never double a run; a scheduler that was
down for a while does not catch up missed slots either (the periodic jobs are
catch-up jobs themselves: relay everything unrelayed, bill everything due).
A job with a ``start_within`` window (the nightly reconcile: 6 hours) is only
started that long into its slot: a scheduler started in the afternoon waits
for the night.

``abohub scheduler`` runs one :class:`Scheduler` (with rq); in the embedded
setup ``abohub serve`` runs one in a thread beside the worker
(:func:`jobs.embedded.start_embedded`). Every tick also runs the backend's
maintenance: on rq it recovers jobs whose worker died (see
:meth:`jobs.rq_backend.RedisQueue.recover_abandoned`), on the database it
purges finished rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from hub.services.clock import Clock
from jobs.loop import Loop

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PERIODIC_PREFIX = "periodic:"  # the job ids of periodic runs start so


@dataclass(frozen=True)
class Periodic:
    """Run ``function`` (a registered job name) with ``args`` once every ``every``."""

    name: str
    function: str
    every: timedelta
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    offset: timedelta = timedelta(0)  # where the slots start, e.g. 02:00 UTC for a nightly job
    queue: str = "default"  # the rq queue (long runs go to "long" so they never hold up syncing)
    # A slot's run starts at most this long after the slot began (None: any time in it). A scheduler
    # started at 15:00 then leaves a nightly job for the night instead of running it at once.
    start_within: timedelta | None = None

    def slot(self, now: datetime) -> int:
        return (now - EPOCH - self.offset) // self.every

    def too_late(self, now: datetime) -> bool:
        """Is it past the current slot's start window?"""
        began = EPOCH + self.offset + self.slot(now) * self.every
        return self.start_within is not None and now - began > self.start_within

    def job_id(self, now: datetime) -> str:
        return f"{PERIODIC_PREFIX}{self.name}:{self.slot(now)}"

    @property
    def remember(self) -> timedelta:
        """How long a slot's id must be remembered to keep it from running twice."""
        return 2 * self.every + timedelta(minutes=1)


SCHEDULE: tuple[Periodic, ...] = (
    Periodic("relay_outbox", "relay_outbox", timedelta(seconds=5)),
    Periodic("repair_sync_states", "repair_sync_states", timedelta(seconds=15)),
    Periodic("poll_connections", "poll_connections", timedelta(minutes=1)),
    Periodic("repair_webhook_receipts", "repair_webhook_receipts", timedelta(minutes=1)),
    Periodic("run_billing", "run_billing", timedelta(hours=1), queue="long"),
    Periodic(
        "reconcile_connections",
        "reconcile_connections",
        timedelta(days=1),
        offset=timedelta(hours=2),  # nightly, at 02:00 UTC
        queue="long",
        start_within=timedelta(hours=6),  # a scheduler down at 02:00 catches up by 08:00, not by day
    ),
)


class SlotQueue(Protocol):
    def enqueue_once(
        self, function: str, args: dict[str, Any], job_id: str, remember: timedelta | None = None
    ) -> bool:
        """Queue a job unless this id was queued before (within ``remember``)."""
        ...


class Scheduler(Loop):
    """Enqueues each periodic job once per slot, and runs the backend's maintenance."""

    name = "abohub-scheduler"

    def __init__(
        self,
        queue: SlotQueue,
        clock: Clock,
        schedule: Sequence[Periodic] = SCHEDULE,
        maintenance: Callable[[], object] | None = None,
        tick_seconds: float = 1.0,
        on_stop: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        names = [p.name for p in schedule]
        if len(set(names)) != len(names):
            raise ValueError(f"periodic job names must be unique: {names}")
        self.queue = queue
        self.clock = clock
        self.schedule = tuple(schedule)
        self.maintenance = maintenance
        self.on_stop = on_stop
        self.idle_seconds = tick_seconds
        self._last_slot: dict[str, int] = {}  # only saves asking again; enqueue_once is the guarantee
        self.ticks = 0  # ticks done so far (the first one queues what the start found due)

    def tick(self) -> list[str]:
        """Enqueue what is due now; the ids newly queued."""
        now = self.clock.now()
        queued = []
        for periodic in self.schedule:
            slot = periodic.slot(now)
            if self._last_slot.get(periodic.name) == slot:
                continue
            if periodic.too_late(now):
                self._last_slot[periodic.name] = slot
                continue
            job_id = periodic.job_id(now)
            if self.queue.enqueue_once(periodic.function, dict(periodic.args), job_id, periodic.remember):
                queued.append(job_id)
                log.debug("scheduled %s", job_id)
            self._last_slot[periodic.name] = slot
        if self.maintenance is not None:
            self.maintenance()
        self.ticks += 1
        return queued

    def step(self) -> bool:
        self.tick()
        return False  # always wait a tick

    def run(self) -> None:
        try:
            super().run()
        finally:
            if self.on_stop is not None:
                self.on_stop()
