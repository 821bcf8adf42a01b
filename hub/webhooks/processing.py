"""Queueing the processing of stored receipts: one ``process_webhooks`` job per connection.

The receiver service only verifies and stores (services do not import ``jobs``);
after its commit the endpoint asks :class:`ProcessingQueue` for the job. The id
is deterministic, ``webhooks:{connection_id}``, so a burst of deliveries makes
one waiting job. It is asked for after duplicate-only deliveries too: a vendor
retry then repairs an enqueue that failed after the commit (that delivery was
answered 503 so that the vendor does retry); should the vendor not retry, the
periodic ``repair_webhook_receipts`` job queues it within about two minutes.

**Shared enqueues.** Asking the queue costs a database (or Redis) round trip,
as much as storing the events. Concurrent deliveries in this process share
one per connection: the receiver service stores them together and then asks
once, for all of them (:class:`~hub.services.webhooks.WebhookReceiver`, "One
statement for many").
"""

from __future__ import annotations

from collections.abc import Callable

from jobs.queue import Queue
from jobs.sync_jobs import PROCESS_JOB, process_job_id

__all__ = ["PROCESS_JOB", "EnqueueFailed", "ProcessingQueue", "process_job_id"]


class EnqueueFailed(Exception):
    """The enqueue this delivery shared failed (the queue's own error is the cause)."""


class ProcessingQueue:
    """The configured job queue, opened on first use (creating the app connects to nothing)."""

    def __init__(self, make_queue: Callable[[], Queue]) -> None:
        self._make_queue = make_queue
        self._queue: Queue | None = None

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            self._queue = self._make_queue()  # two threads may both open one: harmless, one is kept
        return self._queue

    def request(self, connection_id: str) -> bool:
        """Queue the connection's processing job; False when one was already waiting.

        Raises :class:`EnqueueFailed` when the queue could not be asked.
        """
        try:
            return self.queue.enqueue(
                PROCESS_JOB, {"connection_id": connection_id}, process_job_id(connection_id)
            )
        except Exception as exc:
            raise EnqueueFailed("the processing job could not be queued") from exc
