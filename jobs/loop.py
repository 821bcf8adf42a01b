"""A background loop in a daemon thread: start, stop gracefully, survive its own errors."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

log = logging.getLogger(__name__)


class Loop(ABC):
    """Calls :meth:`step` until stopped; waits :attr:`idle_seconds` whenever a step found nothing to do.

    :meth:`stop` lets the step in progress finish (a job is never cut off by a
    graceful stop), then the thread ends. An exception in a step is logged and
    the loop carries on after the idle wait: a database that is briefly down
    must not end the worker.
    """

    name = "loop"
    idle_seconds = 1.0

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def step(self) -> bool:
        """Do one unit of work; False when there was nothing to do."""

    def wait_idle(self) -> None:
        self._stopping.wait(self.idle_seconds)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self) -> None:
        """Run in the calling thread until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                busy = self.step()
            except Exception:
                log.exception("%s: step failed; carrying on", self.name)
                busy = False
            if not busy:
                self.wait_idle()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to end after the step in progress, without waiting."""
        self._stopping.set()
        self.wake()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end and wait up to ``timeout`` seconds; True when it has ended."""
        self.request_stop()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wake(self) -> None:  # noqa: B027 - an optional hook, empty by design
        """Cut an idle wait short (the stop event already does; subclasses may wait on more)."""
