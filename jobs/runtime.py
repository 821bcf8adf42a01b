"""Which job backend runs here, chosen by configuration: :func:`make_queue`, :func:`make_scheduler`.

* ``ABOHUB_REDIS_URL`` set: :class:`jobs.rq_backend.RedisQueue`; ``abohub
  worker`` runs rq workers, ``abohub scheduler`` the one scheduler.
* unset: :class:`EmbeddedQueue`, jobs as rows in the database, run by the
  embedded worker and scheduler threads of ``abohub serve``
  (:func:`jobs.embedded.start_embedded`).

The bound on recovery, written once: **a job whose worker died is retried
within the lease** (``ABOHUB_JOB_LEASE_SECONDS``, default 60 s) plus one poll
or scheduler tick (a second); on rq its run then waits its first retry
interval as well (10 s ± 25 % by default).

This module imports neither the Hub nor a worker, so the service layer may
call :func:`make_queue` (webhooks do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from hub.services.clock import Clock
from jobs.queue import DONE, FAILED, DatabaseQueue, Queue
from jobs.rq_backend import RedisQueue
from jobs.schedule import PERIODIC_PREFIX, SCHEDULE, Periodic, Scheduler

KEEP_FINISHED = timedelta(days=1)
KEEP_FAILED = timedelta(days=30)
PURGE_EVERY_SECONDS = 600.0


class Wiring(Protocol):
    """What the runtime needs of the Hub."""

    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock


class Doorbell:
    """Wakes idle embedded workers of this process when work is queued (others poll each second)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._rings = 0

    @property
    def rings(self) -> int:
        return self._rings

    def ring(self) -> None:
        with self._condition:
            self._rings += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """Wait until a ring after ``seen`` or ``timeout`` seconds; True when rung."""
        with self._condition:
            return self._condition.wait_for(lambda: self._rings != seen, timeout)


DOORBELL = Doorbell()


class EmbeddedQueue(DatabaseQueue):
    """The database queue, ringing the in-process doorbell whenever it queues something."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Clock,
        lease: timedelta,
        doorbell: Doorbell = DOORBELL,
    ) -> None:
        super().__init__(session_factory, clock, lease)
        self.doorbell = doorbell

    def enqueue(
        self, function: str, args: dict[str, Any], job_id: str, run_at: datetime | None = None
    ) -> bool:
        queued = super().enqueue(function, args, job_id, run_at)
        if queued:
            self.doorbell.ring()
        return queued

    def enqueue_once(
        self, function: str, args: dict[str, Any], job_id: str, remember: timedelta | None = None
    ) -> bool:
        queued = super().enqueue_once(function, args, job_id, remember)
        if queued:
            self.doorbell.ring()
        return queued


def routes(schedule: Sequence[Periodic] = SCHEDULE) -> dict[str, str]:
    """Job function → rq queue, for the functions that do not go to ``default``."""
    return {p.function: p.queue for p in schedule if p.queue != "default"}


def make_queue(hub: Wiring) -> Queue:
    """The configured backend: rq when ``ABOHUB_REDIS_URL`` is set, else the database.

    With the database, jobs are leased for ``ABOHUB_JOB_LEASE_SECONDS``
    (default 60 s, renewed while a job runs): a job whose worker died is
    retried within the lease.
    """
    if hub.settings.redis_url:
        return RedisQueue.from_settings(hub.settings, routes=routes())
    return embedded_queue(hub)


def embedded_queue(hub: Wiring) -> EmbeddedQueue:
    return EmbeddedQueue(
        hub.session_factory, hub.clock, lease=timedelta(seconds=hub.settings.job_lease_seconds)
    )


class Every:
    """Calls ``action`` at most once per ``seconds`` (monotonic), however often it is called."""

    def __init__(self, seconds: float, action: Callable[[], object]) -> None:
        self.seconds, self.action = seconds, action
        self._last: float | None = None

    def __call__(self) -> None:
        moment = time.monotonic()
        if self._last is None or moment - self._last >= self.seconds:
            self._last = moment
            self.action()


def purge_finished(queue: DatabaseQueue, schedule: Sequence[Periodic] = SCHEDULE) -> int:
    """Delete finished rows once nothing needs them: periodic slots after they can no longer recur."""
    now = queue.clock.now()
    purged = 0
    for periodic in schedule:
        purged += queue.purge(now - periodic.remember, DONE, f"{PERIODIC_PREFIX}{periodic.name}:")
    longest = max([KEEP_FINISHED, *(p.remember for p in schedule)])
    purged += queue.purge(now - longest, DONE)
    purged += queue.purge(now - KEEP_FAILED, FAILED)
    return purged


def make_scheduler(
    hub: Wiring, schedule: Sequence[Periodic] = SCHEDULE, tick_seconds: float = 1.0
) -> Scheduler:
    """The scheduler for the configured backend, with that backend's maintenance on each tick."""
    if hub.settings.redis_url:
        redis_queue = RedisQueue.from_settings(hub.settings, routes=routes(schedule))
        return Scheduler(
            redis_queue, hub.clock, schedule, redis_queue.maintain, tick_seconds, on_stop=redis_queue.release
        )
    database = embedded_queue(hub)
    maintenance = Every(PURGE_EVERY_SECONDS, lambda: purge_finished(database, schedule))
    return Scheduler(database, hub.clock, schedule, maintenance, tick_seconds)
