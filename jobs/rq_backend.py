"""The rq backend: :class:`RedisQueue`, the same job API on Redis.

Queues are declared here (:data:`QUEUES`): ``default`` for syncing and the
frequent periodic jobs, ``long`` for billing and the nightly reconcile so that
they never hold up syncing. rq names them ``{prefix}-default`` and
``{prefix}-long`` (``ABOHUB_REDIS_PREFIX``, default ``abohub``).

Job ids: rq allows only ``[A-Za-z0-9_-]`` in its ids, so our deterministic id
(``push:con_1:customer:cus_1``) becomes the rq id
``{prefix}-push-con_1-customer-cus_1-{hash}`` (readable, and the hash of the
original keeps two ids that differ only in punctuation apart); the original
is kept in the job's ``meta['abohub_id']``. Every job runs through one entry
point, ``jobs.rq_worker.execute(function, args, job_id)``.

De-duplication mirrors :class:`jobs.queue.DatabaseQueue`:

* an id already waiting (queued or scheduled) is not queued again; a later
  ``run_at`` leaves it, an earlier one moves it forward;
* an id that is running gets one more run after the current one: a Redis key
  ``{prefix}:again:{id}`` holds the arguments, and the entry point runs the
  function again before it ends. A run that has already passed its last look
  at that key marks itself closed (``{prefix}:closed:{id}``); an enqueue that
  finds it closed waits (a few milliseconds, at most a second) for rq to end
  that run, then queues a fresh one;
* an id whose last run finished or failed for good is queued afresh.

Finished jobs are deleted at once (``result_ttl=0``); failed ones stay in rq's
failed registry (``failure_ttl``, 30 days) with their traceback. Failing runs
are retried by rq's ``Retry`` with the growing intervals of
:class:`jobs.retry.RetryPolicy`, then land in the failed registry.

Recovery: a worker that dies mid-job leaves the job in rq's started registry,
whose entry the worker's heartbeat keeps alive for ``ABOHUB_JOB_LEASE_SECONDS``
(default 60) past each heartbeat (see :class:`jobs.rq_worker.HardLimitWorker`).
:meth:`RedisQueue.maintain`, called by the scheduler on every tick (1 s),
hands expired entries to rq's own cleanup, which retries them (or fails them
when their retries are spent), and moves due retries onto their queue. So **a
job whose worker died is queued again within the lease + one scheduler tick,
and runs after its next retry interval** (10 s ± 25 % for the first): within
about 75 s with the defaults.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue as RqQueue
from rq import Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job as RqJob
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler

from config import Settings
from jobs.retry import RetryPolicy

QUEUES = ("default", "long")
ENTRY_POINT = "jobs.rq_worker.execute"
FAILURE_TTL = 30 * 24 * 3600
WAITING = {
    JobStatus.QUEUED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
    JobStatus.CREATED,
    JobStatus.RATE_LIMITED,
    JobStatus.READY_TO_ENQUEUE,
}
CLOSE_WAIT_SECONDS = 1.0

_ASK_AGAIN = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
_CLOSE = """
local again = redis.call('GET', KEYS[1])
if again then
    redis.call('DEL', KEYS[1])
    return again
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return false
"""

_connections: dict[str, Redis] = {}
_connections_lock = threading.Lock()


def redis_connection(url: str) -> Redis:
    """One client (and connection pool) per URL and process; nothing connects until used."""
    with _connections_lock:
        if url not in _connections:
            _connections[url] = Redis.from_url(url)
        return _connections[url]


def rq_job_id(prefix: str, job_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", job_id).strip("-")[:150]
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:10]
    return f"{prefix}-{slug}-{digest}"


def prune_executions(connection: Redis, rq_id: str, dead: list[str] | tuple[str, ...] = ()) -> None:
    """Drop executions of a job that are gone (``dead`` ones, and any whose record expired).

    rq 3.0.0 keeps an execution in the job's execution registry 60 s longer than
    the execution itself; deleting the job meanwhile (which a finished job with
    ``result_ttl=0`` does) raises "Execution … not found in Redis", failing a
    job that had succeeded. That is what a job recovered from a dead worker
    meets, so recovery and every run prune first.
    """
    registry = ExecutionRegistry(job_id=rq_id, connection=connection)
    for raw in connection.zrange(registry.key, 0, -1):
        execution_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        execution = Execution(execution_id, rq_id, connection)
        if execution_id in dead or not connection.exists(execution.key):
            connection.delete(execution.key)
            connection.zrem(registry.key, execution_id)


class RunMarkers:
    """The Redis keys behind "run once more": one job id's again/closed pair."""

    def __init__(self, connection: Redis, prefix: str, job_id: str, again_ttl: int) -> None:
        self.connection = connection
        self.again_key = f"{prefix}:again:{job_id}"
        self.closed_key = f"{prefix}:closed:{job_id}"
        self.again_ttl = again_ttl

    def ask_again(self, args: Mapping[str, Any]) -> bool:
        """Ask the running run for one more; False when it has already closed."""
        script = self.connection.register_script(_ASK_AGAIN)
        return bool(script(keys=[self.again_key, self.closed_key], args=[json.dumps(args), self.again_ttl]))

    def open(self) -> None:
        """A run starts: it will see every change committed before now, so earlier asks are met."""
        self.connection.delete(self.again_key, self.closed_key)

    def close(self) -> dict[str, Any] | None:
        """A run ends: the arguments of one more run when asked for, else mark the run closed."""
        script = self.connection.register_script(_CLOSE)
        again = script(keys=[self.again_key, self.closed_key], args=[60])
        return None if again is None else dict(json.loads(again))


class RedisQueue:
    """The :class:`jobs.queue.Queue` protocol on rq (see the module docstring for the semantics)."""

    def __init__(
        self,
        connection: Redis,
        *,
        prefix: str = "abohub",
        policy: RetryPolicy | None = None,
        time_limit: int = 900,
        routes: Mapping[str, str] | None = None,
    ) -> None:
        self.connection = connection
        self.prefix = prefix
        self.policy = policy or RetryPolicy()
        self.time_limit = time_limit
        self.routes = dict(routes or {})
        self._mover: RQScheduler | None = None

    @classmethod
    def from_settings(cls, settings: Settings, routes: Mapping[str, str] | None = None) -> RedisQueue:
        if not settings.redis_url:
            raise ValueError("ABOHUB_REDIS_URL is not set")
        return cls(
            redis_connection(settings.redis_url),
            prefix=settings.redis_prefix,
            policy=RetryPolicy.from_settings(settings),
            time_limit=settings.job_time_limit_seconds,
            routes=routes,
        )

    # -- names ------------------------------------------------------------------------

    def rq_queue(self, name: str = "default") -> RqQueue:
        if name not in QUEUES:
            raise ValueError(f"unknown queue {name!r} (queues: {', '.join(QUEUES)})")
        return RqQueue(f"{self.prefix}-{name}", connection=self.connection)

    def rq_queues(self, names: tuple[str, ...] | list[str] = QUEUES) -> list[RqQueue]:
        return [self.rq_queue(name) for name in names]

    def rq_id(self, job_id: str) -> str:
        return rq_job_id(self.prefix, job_id)

    def markers(self, job_id: str) -> RunMarkers:
        return RunMarkers(self.connection, self.prefix, job_id, again_ttl=self.time_limit * 2 + 300)

    def fetch(self, job_id: str) -> RqJob | None:
        try:
            return RqJob.fetch(self.rq_id(job_id), connection=self.connection)
        except NoSuchJobError:
            return None

    # -- the Queue protocol -----------------------------------------------------------

    def enqueue(
        self, function: str, args: dict[str, Any], job_id: str, run_at: datetime | None = None
    ) -> bool:
        """Queue a job; False when one with this id is already waiting (or running: then it runs again)."""
        for _ in range(5):
            if self._create(function, args, job_id, run_at):
                return True
            existing = self.fetch(job_id)
            if existing is None:
                continue  # ended between the two calls
            status = existing.get_status(refresh=False)
            if status in WAITING:
                if status == JobStatus.SCHEDULED:
                    self._move_earlier(existing, run_at)
                return False
            if status == JobStatus.STARTED:
                if self.markers(job_id).ask_again(args):
                    return False
                if not self._wait_until_ended(job_id):
                    return False  # rq is slow to close the run; the sync state's repair covers it
                continue
            self._discard(existing, status)
        return False

    def enqueue_once(
        self, function: str, args: dict[str, Any], job_id: str, remember: timedelta | None = None
    ) -> bool:
        """Queue a job unless this id was claimed within ``remember`` (default one day)."""
        seconds = max(1, int((remember or timedelta(days=1)).total_seconds()))
        if not self.connection.set(f"{self.prefix}:once:{job_id}", "1", nx=True, ex=seconds):
            return False
        return self.enqueue(function, args, job_id)

    # -- maintenance ------------------------------------------------------------------

    def maintain(self) -> list[str]:
        """The scheduler's chores on each tick: recover abandoned jobs, move due delayed ones.

        Moving due delayed jobs and retries onto their queues is rq's scheduler's
        work; it runs here under rq's own per-queue lock, so the one ``abohub
        scheduler`` does it every tick and workers started ``with_scheduler``
        take over only when it is gone (rq's lock expires after 61 s).
        """
        recovered = self.recover_abandoned()
        if self._mover is None:
            self._mover = RQScheduler(self.rq_queues(), connection=self.connection)
        if self._mover.acquire_locks():
            self._mover.enqueue_scheduled_jobs()
        return recovered

    def release(self) -> None:
        """Give up rq's scheduler locks (a graceful stop of the scheduler)."""
        if self._mover is not None:
            self._mover.release_locks()

    def recover_abandoned(self, at: datetime | None = None) -> list[str]:
        """Retry (or fail, when out of retries) jobs whose worker stopped its heartbeat before ``at``."""
        timestamp = (at or datetime.now(UTC)).timestamp()
        found = []
        for queue in self.rq_queues():
            registry = StartedJobRegistry(queue=queue)
            entries = [e.decode() for e in self.connection.zrangebyscore(registry.key, 0, timestamp)]
            if not entries:
                continue
            registry.cleanup(timestamp)
            for entry in entries:
                rq_id, _, execution_id = entry.partition(":")  # "{job id}:{execution id}"
                prune_executions(self.connection, rq_id, dead=[execution_id] if execution_id else [])
                found.append(rq_id)
        return found

    def pending(self) -> int:
        """Jobs queued, scheduled or running, on every queue."""
        total = 0
        for queue in self.rq_queues():
            total += queue.count
            total += ScheduledJobRegistry(queue=queue).get_job_count(cleanup=False)
            total += StartedJobRegistry(queue=queue).get_job_count(cleanup=False)
        return total

    # -- internals --------------------------------------------------------------------

    def _create(self, function: str, args: dict[str, Any], job_id: str, run_at: datetime | None) -> bool:
        queue = self.rq_queue(self.routes.get(function, "default"))
        intervals = self.policy.intervals()
        job = queue.create_job(
            ENTRY_POINT,
            args=(function, args, job_id),
            timeout=self.time_limit,
            result_ttl=0,
            failure_ttl=FAILURE_TTL,
            description=f"{function} {job_id}",  # rq logs this; never the arguments
            job_id=self.rq_id(job_id),
            meta={"abohub_id": job_id, "function": function, "max_attempts": self.policy.max_attempts},
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        )
        try:
            if run_at is not None and run_at > datetime.now(UTC):
                queue.schedule_job(job, run_at, unique=True)
            else:
                queue.enqueue_job(job, unique=True)
        except DuplicateJobError:
            return False
        return True

    def _move_earlier(self, job: RqJob, run_at: datetime | None) -> None:
        moment = max(run_at or datetime.now(UTC), datetime.now(UTC) - timedelta(seconds=1))
        registry = ScheduledJobRegistry(name=job.origin, connection=self.connection)
        self.connection.zadd(registry.key, {job.id: int(moment.timestamp())}, xx=True, lt=True)

    def _wait_until_ended(self, job_id: str) -> bool:
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        while time.monotonic() < deadline:
            job = self.fetch(job_id)
            if job is None or job.get_status(refresh=False) != JobStatus.STARTED:
                return True
            time.sleep(0.005)
        return False

    def _discard(self, job: RqJob, status: JobStatus | None) -> None:
        """Delete a job whose run is over, unless it changed meanwhile (another enqueue got there)."""
        prune_executions(self.connection, job.id)
        with self.connection.pipeline() as pipe:
            try:
                pipe.watch(job.key)
                current = pipe.hget(job.key, "status")
                if current is None or current.decode() != (status.value if status else ""):
                    pipe.unwatch()
                    return
                pipe.multi()
                job.delete(pipeline=pipe)
                pipe.execute()
            except WatchError:
                return  # someone else changed it meanwhile: the caller looks again
