"""Job functions by name. A job is ``function(hub, **args)`` with JSON arguments (ids, never objects).

Modules that define jobs register them with :func:`job`; :func:`resolve` finds
them by name, importing the job modules on first use so that a worker process
knows every job without the hub importing the worker.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from jobs.schedule import PERIODIC_PREFIX

JobFunction = Callable[..., Any]

_JOBS: dict[str, JobFunction] = {}
JOB_MODULES = ("jobs.sync_jobs", "jobs.periodic", "jobs.reconcile_jobs")


def job(name: str) -> Callable[[JobFunction], JobFunction]:
    def register(function: JobFunction) -> JobFunction:
        if name in _JOBS and _JOBS[name] is not function:
            raise ValueError(f"two jobs are named {name!r}")
        _JOBS[name] = function
        return function

    return register


class UnknownJob(LookupError):
    pass


def resolve(name: str) -> JobFunction:
    if name not in _JOBS:
        for module in JOB_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
    try:
        return _JOBS[name]
    except KeyError:
        raise UnknownJob(f"no job named {name!r} (known: {', '.join(sorted(_JOBS)) or 'none'})") from None


def progress_level(job_id: str | None) -> int:
    """The log level of a job's "started"/"done" lines: periodic runs every few seconds would drown the
    log at INFO, so theirs are DEBUG (what they did, they log themselves); failures are always logged."""
    return logging.DEBUG if job_id and job_id.startswith(PERIODIC_PREFIX) else logging.INFO
