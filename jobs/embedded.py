"""The embedded runtime: the worker and the scheduler as threads of ``abohub serve``.

Call :func:`start_embedded` once per serving process when ``ABOHUB_REDIS_URL``
is not set (under gunicorn: in each worker process, after the fork, e.g. from
``post_fork`` or from the app factory)::

    runtime = start_embedded(hub)      # None when Redis is configured
    ...
    runtime.stop()                     # on shutdown; also registered with atexit

Several serving processes may each run one: jobs are leased rows, periodic
slots are queued once (see :mod:`jobs.schedule`), so they share the work and
never double it. Stopping is graceful: the job in hand is finished first (up
to ``timeout``); a process killed outright loses nothing either, its job runs
again when the lease ends (``ABOHUB_JOB_LEASE_SECONDS``, default 60 s).
"""

from __future__ import annotations

import atexit
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from hub.bootstrap import Hub
from jobs.runtime import embedded_queue, make_scheduler
from jobs.schedule import SCHEDULE, Periodic, Scheduler
from jobs.worker import EmbeddedWorker

log = logging.getLogger(__name__)


@dataclass
class EmbeddedRuntime:
    """The running threads; :meth:`stop` ends them gracefully."""

    workers: list[EmbeddedWorker]
    scheduler: Scheduler | None
    _stopped: bool = field(default=False, repr=False)

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop scheduling, let each worker finish its job in hand; True when all ended in time."""
        if self._stopped:
            return True
        self._stopped = True
        ended = True
        if self.scheduler is not None:
            ended &= self.scheduler.stop(timeout)
        for worker in self.workers:
            worker.request_stop()  # all stop taking new jobs at once…
        for worker in self.workers:
            ended &= worker.stop(timeout)  # …then each finishes the one it holds
        if not ended:
            log.warning("embedded jobs: a job was still running at shutdown; it runs again after its lease")
        return ended

    def stop_on_signals(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
        """On these signals stop gracefully, then do what the previous handler did (main thread only)."""
        for number in signals:
            previous = signal.getsignal(number)

            def handle(signum: int, frame: FrameType | None, previous: object = previous) -> None:
                self.stop()
                if callable(previous):
                    previous(signum, frame)
                elif previous != signal.SIG_IGN:
                    raise SystemExit(128 + signum)

            signal.signal(number, handle)


def start_embedded(
    hub: Hub,
    *,
    workers: int = 1,
    scheduler: bool = True,
    schedule: Sequence[Periodic] = SCHEDULE,
) -> EmbeddedRuntime | None:
    """Start the embedded worker thread(s) and scheduler; None (and nothing started) when Redis is set."""
    if hub.settings.redis_url:
        log.info("ABOHUB_REDIS_URL is set: jobs run on rq workers (`abohub worker`), not in this process")
        return None
    queue = embedded_queue(hub)
    runtime = EmbeddedRuntime(
        workers=[EmbeddedWorker(hub, queue) for _ in range(workers)],
        scheduler=make_scheduler(hub, schedule) if scheduler else None,
    )
    for worker in runtime.workers:
        worker.start()
    if runtime.scheduler is not None:
        runtime.scheduler.start()
    atexit.register(runtime.stop)
    log.info(
        "embedded jobs: %d worker thread(s)%s started", workers, " and the scheduler" if scheduler else ""
    )
    return runtime
