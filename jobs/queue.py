"""One job API, two backends running the same job functions.

* :class:`DatabaseQueue` — the embedded default: jobs are rows in ``job_runs``,
  taken by the worker inside ``abohub serve`` with a lease. A worker that dies
  mid-job leaves a row whose lease runs out; the next worker takes it again.
* :class:`jobs.rq_backend.RedisQueue` — rq on Redis when ``ABOHUB_REDIS_URL``
  is set; ``abohub worker`` runs rq workers.

:func:`jobs.runtime.make_queue` picks one by configuration.

Jobs are named functions (``jobs.registry``) called with JSON arguments; they
take ids, never objects, and must be idempotent. A job id is deterministic
("push:con_…:customer:cus_…"): enqueuing an id that is already waiting does
nothing, which is how many changes to one record become one job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy import Engine, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.services.clock import Clock
from hub.store.db import autocommit_options
from hub.store.models import JobRun

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

_JOB_STATE = select(JobRun.status, JobRun.run_at).where(JobRun.id == bindparam("job_id"))


@dataclass(frozen=True)
class Job:
    id: str
    function: str
    args: dict[str, Any]
    attempts: int


class Queue(Protocol):
    def enqueue(
        self, function: str, args: dict[str, Any], job_id: str, run_at: datetime | None = None
    ) -> bool:
        """Queue a job; False when a job with this id is already waiting."""
        ...


class DatabaseQueue:
    """Jobs as rows, taken with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock, lease: timedelta) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.lease = lease

    def enqueue(
        self, function: str, args: dict[str, Any], job_id: str, run_at: datetime | None = None
    ) -> bool:
        now = self.clock.now()
        when = run_at or now
        if self._waiting_by(job_id, when):
            return False
        with self.session_factory() as session, session.begin():
            existing = session.get(JobRun, job_id, with_for_update=True)
            if existing is None:
                try:
                    with session.begin_nested():
                        session.add(
                            JobRun(
                                id=job_id,
                                function=function,
                                args=args,
                                status=QUEUED,
                                run_at=when,
                                attempts=0,
                                created_at=now,
                                updated_at=now,
                            )
                        )
                    return True
                except IntegrityError:
                    return False  # another process queued it a moment ago
            if existing.status == QUEUED:
                if when < existing.run_at:
                    existing.run_at = when
                    existing.updated_at = now
                return False
            if existing.status == RUNNING:
                # New work arrived while the job runs: run it once more afterwards.
                existing.args = {**existing.args, **args, "_again": True}
                existing.updated_at = now
                return False
            existing.status, existing.function, existing.args = QUEUED, function, args
            existing.run_at, existing.attempts, existing.last_error = when, 0, None
            existing.locked_until, existing.updated_at = None, now
            return True

    def _waiting_by(self, job_id: str, when: datetime) -> bool:
        """Whether the job is queued to run no later than ``when``: enqueuing it again changes nothing.

        Read without a lock, so that a burst of enqueues of one id (a webhook each) does not queue up
        on its row. A job seen queued starts after this read, so it sees everything committed before.
        """
        with self._reads.connect() as database:
            row = database.execute(_JOB_STATE, {"job_id": job_id}).first()
        return row is not None and row.status == QUEUED and row.run_at <= when

    @cached_property
    def _reads(self) -> Engine:
        """The sessions' engine, for single-statement reads without a transaction (Core: no ORM work)."""
        engine: Engine = self.session_factory.kw["bind"]
        return engine.execution_options(**autocommit_options(engine))

    def enqueue_once(
        self, function: str, args: dict[str, Any], job_id: str, remember: timedelta | None = None
    ) -> bool:
        """Queue a job unless a row with this id exists in any state (periodic slots run once).

        The row is the memory: it stays until :meth:`purge` removes it, which the
        caller must not do sooner than ``remember`` after the run.
        """
        now = self.clock.now()
        row = JobRun(
            id=job_id,
            function=function,
            args=args,
            status=QUEUED,
            run_at=now,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        with self.session_factory() as session, session.begin():
            if session.get(JobRun, job_id) is not None:
                return False
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:
                return False
        return True

    def take(self) -> Job | None:
        """The next due job, leased to the caller; expired leases count as due."""
        now = self.clock.now()
        with self.session_factory() as session, session.begin():
            query = (
                select(JobRun)
                .where(
                    or_(
                        (JobRun.status == QUEUED) & (JobRun.run_at <= now),
                        (JobRun.status == RUNNING) & (JobRun.locked_until < now),
                    )
                )
                .order_by(JobRun.run_at)
                .limit(1)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            run = session.scalar(query)
            if run is None:
                return None
            run.status = RUNNING
            run.attempts += 1
            run.locked_until = now + self.lease
            run.updated_at = now
            return Job(run.id, run.function, dict(run.args), run.attempts)

    def extend(self, job: Job) -> bool:
        """Renew the lease of a job still held by the caller; False when it was lost (taken again)."""
        now = self.clock.now()
        with self.session_factory() as session, session.begin():
            result = session.execute(
                update(JobRun)
                .where(JobRun.id == job.id, JobRun.status == RUNNING, JobRun.attempts == job.attempts)
                .values(locked_until=now + self.lease, updated_at=now)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish(self, job: Job) -> None:
        now = self.clock.now()
        with self.session_factory() as session, session.begin():
            run = session.get(JobRun, job.id, with_for_update=True)
            if run is None or run.status != RUNNING:
                return
            if run.args.get("_again"):
                run.args = {k: v for k, v in run.args.items() if k != "_again"}
                run.status, run.run_at, run.attempts = QUEUED, now, 0
            else:
                run.status = DONE
            run.locked_until, run.last_error, run.updated_at = None, None, now

    def retry(self, job: Job, error: str, at: datetime | None) -> None:
        """Put the job back for ``at``, or mark it failed when ``at`` is None."""
        now = self.clock.now()
        with self.session_factory() as session, session.begin():
            session.execute(
                update(JobRun)
                .where(JobRun.id == job.id)
                .values(
                    status=QUEUED if at else FAILED,
                    run_at=at or now,
                    locked_until=None,
                    last_error=error[:2000],
                    updated_at=now,
                )
            )

    def purge(self, before: datetime, status: str = DONE, id_prefix: str = "") -> int:
        """Delete rows in ``status`` last changed before ``before`` (optionally only ids with a prefix)."""
        query = delete(JobRun).where(JobRun.status == status, JobRun.updated_at < before)
        if id_prefix:
            query = query.where(JobRun.id.startswith(id_prefix, autoescape=True))
        with self.session_factory() as session, session.begin():
            return int(session.execute(query).rowcount)  # type: ignore[attr-defined]

    def pending(self) -> int:
        with self.session_factory() as session:
            waiting = select(func.count()).select_from(JobRun).where(JobRun.status.in_([QUEUED, RUNNING]))
            return int(session.scalar(waiting) or 0)
