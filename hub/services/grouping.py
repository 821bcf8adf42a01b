"""Concurrent calls that share one piece of work: a group commit.

Some work costs a round trip whatever its size: storing one webhook's events,
asking the job queue for a connection's job. When threads of one process ask
for it at the same moment, :class:`GroupedCalls` lets the first do it for all:
while a group's work runs, the calls that arrive (with the same key) join the
next group, which starts as soon as the running one is done and answers them
all. A call only ever joins a group that has not started yet, so its work sees
everything the caller did before calling.

A lone call runs at once, as a group of one: there is no timer and no wait
for company, only the wait for a group already running.

A group that fails as a whole fails each of its calls with a copy of the
error (same type and message, the group's error as its cause): one exception
raised in several threads would carry one traceback, rewritten by whichever
raised it last.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

__all__ = ["GroupedCalls"]


@dataclass
class _Group(Generic[T, R]):
    items: list[T] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    results: Sequence[R | BaseException] = ()
    failed: BaseException | None = None  # the error the whole group failed with


class GroupedCalls(Generic[K, T, R]):
    """Runs the items of concurrent calls with the same key together.

    ``run(key, items)`` does the work of a group and answers each item in order: its
    result, or the exception that call should raise. Should ``run`` itself raise,
    every call of the group raises it.
    """

    def __init__(self, run: Callable[[K, list[T]], Sequence[R | BaseException]]) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._next: dict[K, _Group[T, R]] = {}  # by key: not started yet, arriving calls join
        self._turns: dict[K, threading.Lock] = {}  # by key: held while its group runs

    def call(self, key: K, item: T) -> R:
        with self._lock:
            group = self._next.get(key)
            leads = group is None
            if group is None:
                group = self._next[key] = _Group()
            index = len(group.items)
            group.items.append(item)
            turn = self._turns.setdefault(key, threading.Lock())
        if leads:
            with turn:  # the group running now ends first; calls arriving meanwhile join this one
                with self._lock:
                    del self._next[key]  # from here on, arriving calls wait for the next group
                self._run_group(key, group)
        group.done.wait()
        if group.failed is not None:
            own = _own_copy(group.failed)
            if own is group.failed:
                raise own
            raise own from group.failed
        result = group.results[index]
        if isinstance(result, BaseException):
            raise result
        return result

    def waiting(self, key: K) -> int:
        """Calls waiting for the key's next group (one that has not started yet)."""
        with self._lock:
            group = self._next.get(key)
            return len(group.items) if group is not None else 0

    def _run_group(self, key: K, group: _Group[T, R]) -> None:
        try:
            results = self._run(key, group.items)
            if len(results) != len(group.items):
                raise RuntimeError(f"{len(group.items)} calls were answered {len(results)} times")
            group.results = results
        except BaseException as exc:
            group.failed = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            group.done.set()


def _own_copy(error: BaseException) -> BaseException:
    """The error for one call of a failed group; the error itself if it cannot be copied."""
    try:
        return copy.copy(error)
    except Exception:
        return error
