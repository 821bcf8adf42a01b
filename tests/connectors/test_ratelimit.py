"""Token buckets on real Redis and in process: pacing, sharing across processes and threads, pauses."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from connectors.errors import RateLimited, RetriableError
from connectors.ratelimit import Backend, LocalBackend, RedisBackend, TokenBucket, make_bucket, window_bucket

REDIS_URL = os.environ.get("ABOHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A Redis key prefix of this test alone; its keys are deleted afterwards."""
    value = f"abohub-test:{uuid.uuid4().hex}:"
    yield value
    keys = list(redis_client.scan_iter(match=value + "*"))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture(params=["local", "redis"])
def backend(request: pytest.FixtureRequest, redis_client: redis.Redis, prefix: str) -> Backend:
    return LocalBackend() if request.param == "local" else RedisBackend(redis_client, prefix)


def most_in_window(times: list[float], window: float) -> int:
    """The largest number of events within any interval of ``window`` seconds."""
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best


def assert_paced(times: list[float], rate: float, capacity: float) -> None:
    """Never more than the bucket allows in any window (one token of tolerance for timing
    noise), and overall close to the rate: the bucket paces, it does not stall."""
    for window in (0.05, 0.1, 0.2, 0.4):
        assert most_in_window(times, window) <= capacity + rate * window + 1, window
    span = max(times) - min(times)
    ideal = (len(times) - capacity) / rate
    assert ideal * 0.95 <= span <= ideal * 1.5 + 0.1


def test_try_acquire_takes_the_burst_then_refuses(backend: Backend) -> None:
    bucket = TokenBucket("burst", rate_per_second=1, capacity=3, backend=backend)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_acquire_waits_for_the_next_token(backend: Backend) -> None:
    bucket = TokenBucket("wait", rate_per_second=20, capacity=1, backend=backend)
    assert bucket.acquire() < 0.03
    started = time.monotonic()
    waited = bucket.acquire()
    assert 0.045 <= time.monotonic() - started < 0.3
    assert 0.045 <= waited < 0.3


def test_acquire_refuses_at_once_beyond_max_wait(backend: Backend) -> None:
    bucket = TokenBucket("slow", rate_per_second=2, capacity=1, backend=backend)
    bucket.acquire()
    started = time.monotonic()
    with pytest.raises(RateLimited) as raised:
        bucket.acquire(max_wait=0.1)
    assert time.monotonic() - started < 0.09  # it did not sleep (max_wait 0.1) in vain
    assert raised.value.retry_after == pytest.approx(0.5, abs=0.05)
    assert "'slow'" in str(raised.value)


def test_more_tokens_than_the_capacity_is_a_programming_error(backend: Backend) -> None:
    bucket = TokenBucket("small", rate_per_second=10, capacity=2, backend=backend)
    with pytest.raises(ValueError):
        bucket.acquire(3)
    with pytest.raises(ValueError):
        TokenBucket("bad", rate_per_second=0, capacity=1, backend=backend)


def test_pause_stops_the_bucket_then_resumes_with_one_token(backend: Backend) -> None:
    bucket = TokenBucket("pause", rate_per_second=10, capacity=5, backend=backend)
    bucket.pause(0.2)
    assert not bucket.try_acquire()
    assert bucket.acquire() == pytest.approx(0.2, abs=0.04)
    # After a pause the burst is gone: the next token comes at the rate, not all five at once.
    assert not bucket.try_acquire()
    assert bucket.acquire() == pytest.approx(0.1, abs=0.03)


def test_a_pause_is_extended_never_shortened(backend: Backend) -> None:
    bucket = TokenBucket("extend", rate_per_second=100, capacity=1, backend=backend)
    bucket.pause(0.2)
    bucket.pause(0.05)
    assert bucket.acquire() == pytest.approx(0.2, abs=0.04)


def test_a_pause_reaches_every_client_of_a_redis_bucket(prefix: str) -> None:
    """Two workers, two connections: one pauses (it got a 429), the other waits."""
    first = redis.Redis.from_url(REDIS_URL)
    second = redis.Redis.from_url(REDIS_URL)
    try:
        worker_a = TokenBucket("vendor", 100, 10, RedisBackend(first, prefix))
        worker_b = TokenBucket("vendor", 100, 10, RedisBackend(second, prefix))
        assert worker_b.try_acquire()
        worker_a.pause(0.25)
        assert not worker_b.try_acquire()
        assert worker_b.acquire() == pytest.approx(0.25, abs=0.04)
    finally:
        first.close()
        second.close()


def test_redis_keys_expire_and_are_prefixed(redis_client: redis.Redis, prefix: str) -> None:
    bucket = TokenBucket("ttl", rate_per_second=10, capacity=10, backend=RedisBackend(redis_client, prefix))
    bucket.acquire()
    ttl = redis_client.pttl(prefix + "ttl")
    assert 60_000 < ttl <= 62_000  # a full refill (1 s) plus a minute


def test_redis_unavailable_is_retriable() -> None:
    bucket = TokenBucket("down", 1, 1, RedisBackend(redis.Redis.from_url("redis://127.0.0.1:1")))
    with pytest.raises(RetriableError, match="rate limiter 'down' unavailable"):
        bucket.acquire()


def test_make_bucket_picks_redis_when_given_a_client_or_url(redis_client: redis.Redis) -> None:
    name = f"abohub-test-factory-{uuid.uuid4().hex}"
    assert isinstance(make_bucket(name, 5, 5).backend, LocalBackend)
    assert isinstance(make_bucket(name, 5, 5, redis_client).backend, RedisBackend)
    from_url = make_bucket(name, 5, 5, REDIS_URL)
    assert isinstance(from_url.backend, RedisBackend)
    assert from_url.try_acquire()
    redis_client.delete(f"abohub:ratelimit:{name}")


def test_local_bucket_is_shared_by_threads() -> None:
    bucket = TokenBucket("threads", rate_per_second=100, capacity=2, backend=LocalBackend())
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def grab() -> None:
        start.wait()
        for _ in range(10):
            bucket.acquire()
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(times) == 40
    assert_paced(times, rate=100, capacity=2)


def _grab_from_redis(prefix: str, count: int, ready: object, results: object) -> None:
    """Runs in another process: take ``count`` tokens from the shared bucket, report when."""
    client = redis.Redis.from_url(REDIS_URL)
    bucket = TokenBucket("shared", rate_per_second=50, capacity=2, backend=RedisBackend(client, prefix))
    times = []
    ready.wait()  # type: ignore[attr-defined]
    for _ in range(count):
        bucket.acquire()
        times.append(time.monotonic())  # CLOCK_MONOTONIC: one clock for all processes on Linux
    results.put(times)  # type: ignore[attr-defined]
    client.close()


def test_redis_bucket_is_shared_by_processes(prefix: str) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(3)
    results = context.Queue()
    workers = [context.Process(target=_grab_from_redis, args=(prefix, 15, ready, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    ready.wait(timeout=30)
    per_worker = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    times = [t for worker_times in per_worker for t in worker_times]
    assert len(times) == 30
    # Both processes got tokens, and together they kept to one bucket's rate (two private
    # buckets would have allowed twice as much).
    assert all(len(worker_times) == 15 for worker_times in per_worker)
    assert_paced(times, rate=50, capacity=2)


def test_a_window_bucket_cannot_let_a_rolling_window_over_the_limit_even_after_idling() -> None:
    bucket = window_bucket("hubspot-like", 190, window_seconds=10.0)
    # In any span t a bucket lets through at most capacity + rate * t: a full bucket after an idle
    # spell plus a window's refill (and 0.1 s for requests that arrive late) stays within the limit…
    assert bucket.capacity + bucket.rate * 10.1 <= 190
    # …while the steady pace stays close to it.
    assert bucket.rate * 10 >= 0.95 * 190
