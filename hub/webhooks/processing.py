"""Queueing the processing of stored receipts: one ``process_webhooks`` job per connection.

The receiver service only verifies and stores (services do not import ``jobs``);
after its commit the endpoint asks :class:`ProcessingQueue` for the job. The id
is deterministic, ``webhooks:{connection_id}``, so a burst of deliveries makes
one waiting job. It is asked for after duplicate-only deliveries too: a vendor
retry then repairs an enqueue that failed after the commit (that delivery was
answered 503 so that the vendor does retry); should the vendor not retry, the
periodic ``repair_webhook_receipts`` job queues it within about two minutes.

**Shared enqueues.** Asking the queue costs a database (or Redis) round trip,
as much as storing the events. Concurrent deliveries of one connection in this
process share one: while an enqueue of the connection's job runs, the
deliveries that arrive wait for the next one, which starts once it is done and
answers them all. A delivery only ever shares an enqueue that starts after it
asked, that is after its events were committed, so the job it gets is one that
will read them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from jobs.queue import Queue
from jobs.sync_jobs import PROCESS_JOB, process_job_id

__all__ = ["PROCESS_JOB", "EnqueueFailed", "ProcessingQueue", "process_job_id"]


class EnqueueFailed(Exception):
    """The enqueue this delivery shared failed (the queue's own error is the cause)."""


@dataclass
class _Shared:
    """One enqueue of a connection's job and the deliveries that will take its answer."""

    deliveries: int = 1
    done: threading.Event = field(default_factory=threading.Event)
    queued: bool = False
    error: BaseException | None = None


class ProcessingQueue:
    """The configured job queue, opened on first use (creating the app connects to nothing)."""

    def __init__(self, make_queue: Callable[[], Queue]) -> None:
        self._make_queue = make_queue
        self._queue: Queue | None = None
        self._lock = threading.Lock()
        self._next: dict[str, _Shared] = {}  # by connection: not started yet, arriving deliveries join
        self._turns: dict[str, threading.Lock] = {}  # by connection: held while its enqueue runs

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            self._queue = self._make_queue()  # two threads may both open one: harmless, one is kept
        return self._queue

    def request(self, connection_id: str) -> bool:
        """Queue the connection's processing job; False when one was already waiting.

        Raises :class:`EnqueueFailed` when the queue could not be asked.
        """
        with self._lock:
            shared = self._next.get(connection_id)
            leads = shared is None
            if shared is None:
                shared = self._next[connection_id] = _Shared()
            else:
                shared.deliveries += 1
            turn = self._turns.setdefault(connection_id, threading.Lock())
        if leads:
            with turn:  # the enqueue running now ends first; deliveries arriving meanwhile join ours
                with self._lock:
                    del self._next[connection_id]  # from here on, arriving deliveries wait for the next
                self._enqueue(connection_id, shared)
        shared.done.wait()
        if shared.error is not None:
            raise EnqueueFailed("the processing job could not be queued") from shared.error
        return shared.queued

    def waiting(self, connection_id: str) -> int:
        """Deliveries waiting for the connection's next enqueue (one that has not started yet)."""
        with self._lock:
            shared = self._next.get(connection_id)
            return shared.deliveries if shared is not None else 0

    def _enqueue(self, connection_id: str, shared: _Shared) -> None:
        try:
            shared.queued = self.queue.enqueue(
                PROCESS_JOB, {"connection_id": connection_id}, process_job_id(connection_id)
            )
        except BaseException as exc:
            shared.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            shared.done.set()
