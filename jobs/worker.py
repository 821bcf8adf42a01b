"""The embedded worker: runs jobs from the database queue in a thread of ``abohub serve``.

Each job is taken with a lease (``ABOHUB_JOB_LEASE_SECONDS``, default 60 s)
that a helper thread renews every third of the lease while the job runs, up
to the hard time limit (``ABOHUB_JOB_TIME_LIMIT_SECONDS``). A worker that dies
(SIGKILL, power cut) stops renewing, so **a job whose worker died runs again
within one lease** (plus one idle poll, a second) on any worker of any process.
A job still running past the time limit loses its lease the same way (a thread
cannot be killed; the job must be idempotent, as every job is).

A job that raises is put back with a growing delay (:class:`jobs.retry.RetryPolicy`)
and after the last attempt is marked failed with its reason in
``job_runs.last_error``. Dead-lettering sync work is the job function's own
business; the runtime only keeps the job row's failure reason. The log names
the job's id, function, attempt and duration, never its arguments.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from hub.bootstrap import Hub
from jobs.loop import Loop
from jobs.queue import DatabaseQueue, Job
from jobs.registry import progress_level, resolve
from jobs.retry import RetryPolicy
from jobs.runtime import DOORBELL, Doorbell

log = logging.getLogger(__name__)

AGAIN = "_again"  # DatabaseQueue's marker for "run once more", not an argument of the job


def describe(error: BaseException) -> str:
    """The readable reason kept on the job row."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _LeaseKeeper:
    """Renews a job's lease while it runs, until the time limit."""

    def __init__(self, queue: DatabaseQueue, job: Job, every: float, limit: float) -> None:
        self.queue, self.job, self.every, self.limit = queue, job, every, limit
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease:{job.id}", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._done.wait(self.every):
            if time.monotonic() - started > self.limit:
                log.error(
                    "job %s (%s) passed its time limit of %.0f s; its lease now runs out",
                    self.job.id,
                    self.job.function,
                    self.limit,
                )
                return
            try:
                if not self.queue.extend(self.job):
                    log.warning(
                        "job %s (%s) lost its lease to another worker", self.job.id, self.job.function
                    )
                    return
            except Exception:
                log.exception("job %s: renewing the lease failed; trying again", self.job.id)


class EmbeddedWorker(Loop):
    """Takes due jobs from a :class:`DatabaseQueue`, one at a time, and runs them with the Hub."""

    name = "abohub-worker"

    def __init__(
        self,
        hub: Hub,
        queue: DatabaseQueue,
        policy: RetryPolicy | None = None,
        *,
        time_limit: timedelta | None = None,
        idle_seconds: float = 1.0,
        doorbell: Doorbell = DOORBELL,
    ) -> None:
        super().__init__()
        self.hub = hub
        self.queue = queue
        self.policy = policy or RetryPolicy.from_settings(hub.settings)
        self.time_limit = time_limit or timedelta(seconds=hub.settings.job_time_limit_seconds)
        self.idle_seconds = idle_seconds
        self.doorbell = doorbell
        self._rings_seen = doorbell.rings

    def step(self) -> bool:
        self._rings_seen = self.doorbell.rings  # a ring after this point cuts the idle wait short
        job = self.queue.take()
        if job is None:
            return False
        self.run_job(job)
        return True

    def wait_idle(self) -> None:
        if not self.stopping:
            self.doorbell.wait(self._rings_seen, self.idle_seconds)

    def wake(self) -> None:
        self.doorbell.ring()

    def run_job(self, job: Job) -> None:
        args = {name: value for name, value in job.args.items() if name != AGAIN}
        level = progress_level(job.id)
        log.log(level, "job %s (%s) attempt %d started", job.id, job.function, job.attempts)
        started = time.monotonic()
        keeper = _LeaseKeeper(
            self.queue, job, every=self.queue.lease.total_seconds() / 3, limit=self.time_limit.total_seconds()
        )
        try:
            with keeper:
                resolve(job.function)(self.hub, **args)
        except Exception as error:
            self._failed(job, error, time.monotonic() - started)
            return
        self.queue.finish(job)
        log.log(
            level,
            "job %s (%s) attempt %d done in %.3f s",
            job.id,
            job.function,
            job.attempts,
            time.monotonic() - started,
        )

    def _failed(self, job: Job, error: Exception, seconds: float) -> None:
        reason = describe(error)
        delay = self.policy.delay(job.attempts)
        if delay is None:
            self.queue.retry(job, reason, None)
            log.error(
                "job %s (%s) attempt %d failed in %.3f s, the last attempt: %s",
                job.id,
                job.function,
                job.attempts,
                seconds,
                reason,
                exc_info=error,
            )
            return
        at = self.hub.clock.now() + delay
        self.queue.retry(job, reason, at)
        log.warning(
            "job %s (%s) attempt %d failed in %.3f s, next attempt in %.0f s: %s",
            job.id,
            job.function,
            job.attempts,
            seconds,
            delay.total_seconds(),
            reason,
            exc_info=error,
        )
