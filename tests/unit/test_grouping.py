"""Concurrent calls sharing one piece of work: a call joins only a group that has not started, so the
work it shares sees what the caller did before calling; each call gets its own answer."""

from __future__ import annotations

import threading
import time

import pytest

from hub.services.grouping import GroupedCalls


class Held:
    """A group runner that waits until the test lets it go; it records each group it ran."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[int]]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def __call__(self, key: str, items: list[int]) -> list[int | BaseException]:
        self.groups.append((key, list(items)))
        self.started.release()
        assert self.release.acquire(timeout=10)
        return [ValueError(f"{item} is odd") if item % 2 else item * 10 for item in items]


def wait_for(condition) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def run_in_threads(calls: GroupedCalls, key: str, items: list[int], answers: dict) -> list[threading.Thread]:  # type: ignore[type-arg]
    def call(item: int) -> None:
        try:
            answers[item] = calls.call(key, item)
        except ValueError as exc:
            answers[item] = str(exc)

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads


def test_calls_arriving_while_a_group_runs_share_the_next_group_never_the_running_one():
    held = Held()
    calls: GroupedCalls[str, int, int] = GroupedCalls(held)
    answers: dict[int, object] = {}
    first = run_in_threads(calls, "a", [2], answers)
    assert held.started.acquire(timeout=10)  # the first group runs (it may not see later work)…
    later = run_in_threads(calls, "a", [4, 5, 6], answers)
    wait_for(lambda: calls.waiting("a") == 3)  # …so the calls after it wait for the next
    held.release.release()
    assert held.started.acquire(timeout=10)
    held.release.release()
    for thread in first + later:
        thread.join(10)
    assert [(key, sorted(items)) for key, items in held.groups] == [("a", [2]), ("a", [4, 5, 6])]
    assert answers == {2: 20, 4: 40, 5: "5 is odd", 6: 60}  # each call its own answer or its own error
    assert calls.waiting("a") == 0


def test_keys_do_not_wait_for_each_other():
    held = Held()
    calls: GroupedCalls[str, int, int] = GroupedCalls(held)
    answers: dict[int, object] = {}
    threads = run_in_threads(calls, "a", [2], answers)
    assert held.started.acquire(timeout=10)
    threads += run_in_threads(calls, "b", [4], answers)
    assert held.started.acquire(timeout=10)  # "b" started while "a" still runs
    held.release.release()
    held.release.release()
    for thread in threads:
        thread.join(10)
    assert answers == {2: 20, 4: 40}


def test_a_failing_group_fails_every_call_in_it_and_the_next_group_runs():
    outcomes = iter([ConnectionError("the database restarted"), None])

    def run(key: str, items: list[int]) -> list[int]:
        failure = next(outcomes)
        if failure is not None:
            raise failure
        return items

    calls: GroupedCalls[str, int, int] = GroupedCalls(run)
    with pytest.raises(ConnectionError, match="restarted"):
        calls.call("a", 1)
    assert calls.call("a", 2) == 2


def test_each_call_of_a_failed_group_raises_its_own_copy_of_the_error():
    held = Held()

    def run(key: str, items: list[int]) -> list[int]:
        held(key, items)
        raise ConnectionError("the database restarted")

    calls: GroupedCalls[str, int, int] = GroupedCalls(run)
    raised: dict[int, BaseException] = {}

    def call(item: int) -> None:
        try:
            calls.call("a", item)
        except ConnectionError as exc:
            raised[item] = exc

    threads = [threading.Thread(target=call, args=(1,))]
    threads[0].start()
    assert held.started.acquire(timeout=10)  # the first group runs; the next three wait for it
    threads += [threading.Thread(target=call, args=(item,)) for item in (2, 3, 4)]
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: calls.waiting("a") == 3)
    held.release.release()
    assert held.started.acquire(timeout=10)
    held.release.release()
    for thread in threads:
        thread.join(10)
    assert sorted(raised) == [1, 2, 3, 4]
    assert all(str(exc) == "the database restarted" for exc in raised.values())
    shared = [raised[2], raised[3], raised[4]]  # one group: one error, a copy for each call
    assert len({id(exc) for exc in shared}) == 3
    assert shared[0].__cause__ is shared[1].__cause__ is shared[2].__cause__
    assert shared[0].__traceback__ is not shared[1].__traceback__


def test_a_runner_that_answers_too_few_calls_is_an_error_not_a_wrong_answer():
    calls: GroupedCalls[str, int, int] = GroupedCalls(lambda key, items: [])
    with pytest.raises(RuntimeError, match="1 calls were answered 0 times"):
        calls.call("a", 1)
