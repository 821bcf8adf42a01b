"""The rq side of a worker process: the one entry point every job runs through, and the worker class.

``abohub worker`` builds the Hub once from the settings and starts a
:class:`HardLimitWorker` on the declared queues (with rq's scheduler, which
moves delayed jobs and retries onto their queues when due). rq forks a
work-horse per job; the horse inherits the Hub and, on first use, drops the
parent's database connections (SQLAlchemy's ``dispose(close=False)``, the
documented way after a fork) so that it opens its own. The worker imports the
installed connectors before it starts, so that no horse spends its first
~0.1 s importing them (and requests) for its job.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import time
import uuid
from collections.abc import Sequence
from typing import Any

from rq import Queue as RqQueue
from rq import Worker, get_current_job
from rq.job import Job as RqJob
from rq.utils import now

from config import Settings, load_settings
from connectors.registry import available
from hub.bootstrap import Hub, build
from jobs.registry import progress_level, resolve
from jobs.rq_backend import QUEUES, RedisQueue, prune_executions, redis_connection

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h

_hub: Hub | None = None
_hub_pid = 0


def install_hub(hub: Hub | None) -> None:
    """Use this Hub for the jobs of this process (and of the horses it forks); None forgets it."""
    global _hub, _hub_pid
    _hub, _hub_pid = hub, os.getpid()


def worker_hub() -> Hub:
    """The process's Hub, built from the settings on first use."""
    global _hub_pid
    if _hub is None:
        install_hub(build(load_settings()))
    assert _hub is not None
    if _hub_pid != os.getpid():  # a forked horse: never share the parent's connections
        _hub.engine.dispose(close=False)
        _hub_pid = os.getpid()
    return _hub


def execute(function: str, args: dict[str, Any], job_id: str | None = None) -> None:
    """rq's entry point: run the registered job ``function(hub, **args)``, and once more when asked."""
    hub = worker_hub()
    current = get_current_job()
    markers = None
    if job_id is not None and current is not None:
        backend = RedisQueue(
            current.connection,
            prefix=hub.settings.redis_prefix,
            time_limit=hub.settings.job_time_limit_seconds,
        )
        markers = backend.markers(job_id)
        markers.open()
    name = job_id or (current.id if current else function)
    attempt = _attempt(current)
    run_args = args
    level = progress_level(name)
    while True:
        started = time.monotonic()
        log.log(level, "job %s (%s) attempt %d started", name, function, attempt)
        try:
            resolve(function)(hub, **run_args)
        except Exception as error:
            log.warning(
                "job %s (%s) attempt %d failed in %.3f s: %s (rq retries it or keeps it as failed)",
                name,
                function,
                attempt,
                time.monotonic() - started,
                type(error).__name__,
            )
            raise
        elapsed = time.monotonic() - started
        log.log(level, "job %s (%s) attempt %d done in %.3f s", name, function, attempt, elapsed)
        again = markers.close() if markers is not None else None
        if again is None:
            return
        run_args = {**args, **again}
        log.info("job %s (%s): more work arrived while it ran; running it once more", name, function)


def _attempt(job: RqJob | None) -> int:
    if job is None or job.retries_left is None:
        return 1
    return int(job.meta.get("max_attempts", 1)) - job.retries_left


def _die_with(parent: int) -> None:
    """Linux: have the kernel SIGKILL this process when ``parent`` dies (a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


class HardLimitWorker(Worker):
    """rq's forking worker with a lease-based heartbeat and a hard time limit.

    * The started-job registry entry of a running job lives ``lease_seconds``
      past each heartbeat (rq's default adds a fixed minute); heartbeats come
      every third of the lease. A worker that dies is noticed one lease later
      by :meth:`jobs.rq_backend.RedisQueue.recover_abandoned`.
    * The work-horse dies with the worker (Linux ``PR_SET_PDEATHSIG``): a
      worker killed with SIGKILL leaves no orphan running the job while the
      recovered job runs elsewhere.
    * A job still running ``grace_seconds`` past its timeout (rq's own timeout
      raises inside the horse, which C code or a stuck socket can ignore) has
      its horse killed; the job then fails, and its retries take over.
    """

    lease_seconds = 60
    grace_seconds = 10

    def execute_job(self, job: RqJob, queue: RqQueue) -> None:
        prune_executions(self.connection, job.id)  # see prune_executions: a recovered job would fail
        super().execute_job(job, queue)

    def main_work_horse(self, job: RqJob, queue: RqQueue) -> None:
        # rq puts the horse in its own process group, so it outlives a worker killed with SIGKILL
        # and would go on running the job while the recovered job runs elsewhere: tie it to us.
        _die_with(self.pid or os.getppid())
        super().main_work_horse(job, queue)

    def get_heartbeat_ttl(self, job: RqJob, working_time: float = 0.0) -> int:
        return self.lease_seconds

    def maintain_heartbeats(self, job: RqJob, execution: Any) -> None:
        working = (now() - job.started_at).total_seconds() if job.started_at else 0.0
        if job.timeout and job.timeout > 0 and working > job.timeout + self.grace_seconds:
            log.error(
                "job %s ran %.0f s, past its time limit of %s s: killing its work-horse",
                job.meta.get("abohub_id", job.id),
                working,
                job.timeout,
            )
            self.kill_horse()
            return
        super().maintain_heartbeats(job, execution)


def make_worker(settings: Settings, queues: Sequence[str] = QUEUES) -> HardLimitWorker:
    if not settings.redis_url:
        raise ValueError("ABOHUB_REDIS_URL is not set")
    connection = redis_connection(settings.redis_url)
    backend = RedisQueue(connection, prefix=settings.redis_prefix)
    worker = HardLimitWorker(
        backend.rq_queues(list(queues)),
        name=f"{settings.redis_prefix}-{uuid.uuid4().hex[:16]}",
        connection=connection,
        job_monitoring_interval=max(1, settings.job_lease_seconds // 3),
        maintenance_interval=60,
    )
    worker.lease_seconds = settings.job_lease_seconds
    return worker


def run_worker(settings: Settings, queues: Sequence[str] = QUEUES, burst: bool = False) -> bool:
    """Run an rq worker until SIGTERM (finishing the job in hand) or, with ``burst``, until idle."""
    worker = make_worker(settings, queues)
    install_hub(build(settings))
    available()  # import the connector plug-ins (and requests with them) once: every forked horse has them
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
