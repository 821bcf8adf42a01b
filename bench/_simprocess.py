"""The HubSpot simulator in a process of its own, driven over a pipe, for the benchmarks.

HubSpot is never inside the hub's process; a simulator in the measured process would take its share
of that process's interpreter lock and bill it to the hub. Here the measured process only talks HTTP
to it, as it would to HubSpot. What a benchmark needs to know of the simulator's side (which records
got their new value, and when; the requests it answered) is asked over the pipe.

Times are ``time.monotonic()``: one clock for every process on the machine.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from connectors.hubspot.sim.store import Change
from connectors.hubspot.simulator import HubSpotSimulator


class _Landings:
    """When each record last got a write from the API (source INTEGRATION) to one property."""

    def __init__(self, remote_property: str) -> None:
        self.remote_property = remote_property
        self.at: dict[int, float] = {}
        self._lock = threading.Lock()

    def __call__(self, changes: list[Change]) -> None:
        moment = time.monotonic()
        with self._lock:
            for change in changes:
                if change.source == "INTEGRATION" and change.property_name == self.remote_property:
                    self.at[change.object_id] = moment

    def summary(self) -> tuple[int, float | None, float | None]:
        with self._lock:
            if not self.at:
                return 0, None, None
            return len(self.at), min(self.at.values()), max(self.at.values())


def _serve(pipe: Connection, options: dict[str, Any]) -> None:
    sim = HubSpotSimulator(**options)
    sim.start()
    landings: _Landings | None = None
    pipe.send({"base_url": sim.base_url, "token": sim.token, "client_secret": sim.client_secret})
    while True:
        command, args = pipe.recv()
        if command == "stop":
            sim.stop()
            pipe.send(None)
            return
        if command == "create_many":
            object_type, rows = args
            pipe.send(sim.create_many(object_type, rows))
        elif command == "watch":
            landings = _Landings(args)
            sim.store.listeners.append(landings)
            pipe.send(None)
        elif command == "landings":
            pipe.send(landings.summary() if landings else (0, None, None))
        elif command == "reset_stats":
            sim.reset_stats()
            pipe.send(None)
        elif command == "requests":
            pipe.send(Counter(sim.stats.requests))
        elif command == "records":
            pipe.send(sim.records(args))
        else:
            pipe.send(ValueError(f"unknown command {command!r}"))


class SimulatorProcess:
    """``with SimulatorProcess(webhook_mode="off", rate_limit=190) as sim:`` (HubSpotSimulator's options)."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.base_url = self.token = self.client_secret = ""

    def __enter__(self) -> SimulatorProcess:
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no threads or sockets inherited
        ours, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, self.options), daemon=True)
        self._process.start()
        self._pipe = ours
        info = ours.recv()
        self.base_url, self.token, self.client_secret = info["base_url"], info["token"], info["client_secret"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        try:
            self._call("stop")
        finally:
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.kill()

    @property
    def pid(self) -> int:
        assert self._process is not None and self._process.pid is not None
        return self._process.pid

    def _call(self, command: str, args: Any = None) -> Any:
        assert self._pipe is not None, "use it in a with block"
        self._pipe.send((command, args))
        answer = self._pipe.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def create_many(self, object_type: str, rows: list[dict[str, Any]]) -> list[str]:
        return list(self._call("create_many", (object_type, rows)))

    def watch(self, remote_property: str) -> None:
        """From now on, note when each record gets an API write to ``remote_property``."""
        self._call("watch", remote_property)

    def landings(self) -> tuple[int, float | None, float | None]:
        """(records written so far, the earliest and the latest of their writes' ``time.monotonic()``)."""
        count, first, last = self._call("landings")
        return int(count), first, last

    def reset_stats(self) -> None:
        self._call("reset_stats")

    def requests(self) -> Counter[tuple[str, str, int]]:
        return Counter(self._call("requests"))

    def records(self, object_type: str) -> list[dict[str, Any]]:
        return list(self._call("records", object_type))
