"""Queueing the processing of stored receipts: one ``process_webhooks`` job per connection.

The receiver service only verifies and stores (services do not import ``jobs``);
after its commit the endpoint asks :class:`ProcessingQueue` for the job. The id
is deterministic, ``webhooks:{connection_id}``, so a burst of deliveries makes
one waiting job. It is asked for after duplicate-only deliveries too: a vendor
retry then repairs an enqueue that failed after the commit (that delivery was
answered 503 so that the vendor does retry).
"""

from __future__ import annotations

from collections.abc import Callable

from jobs.queue import Queue

PROCESS_JOB = "process_webhooks"


def process_job_id(connection_id: str) -> str:
    return f"webhooks:{connection_id}"


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
        """Queue the connection's processing job; False when one was already waiting."""
        return self.queue.enqueue(
            PROCESS_JOB, {"connection_id": connection_id}, process_job_id(connection_id)
        )
