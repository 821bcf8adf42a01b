"""Pacing requests to a vendor with a token bucket, shared by every worker when Redis is there.

A bucket holds up to ``capacity`` tokens and gains ``rate_per_second`` of them continuously;
each request takes one. :meth:`TokenBucket.acquire` waits for tokens (up to ``max_wait``),
:meth:`TokenBucket.try_acquire` never waits, and :meth:`TokenBucket.pause` stops the whole
bucket for a while (a vendor's 429 with Retry-After: every worker backs off, not only the one
that got it). After a pause the bucket restarts with one token, then refills at its rate.

Two backends keep the state: :class:`RedisBackend` (one atomic Lua script per call, keyed by
the bucket's name, timed by the Redis server's clock so machines with skewed clocks still share
one bucket) and :class:`LocalBackend` (this process only, thread-safe). :func:`make_bucket`
picks Redis when given a client or URL, else the process-wide local backend.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from typing import Protocol

import redis

from connectors.errors import RateLimited, RetriableError


class Backend(Protocol):
    def take(self, name: str, tokens: float, rate: float, capacity: float) -> float:
        """Take ``tokens`` and return 0.0, or take none and return the seconds (> 0) until they could be."""
        ...

    def pause(self, name: str, seconds: float, rate: float, capacity: float) -> None:
        """Give no tokens for ``seconds`` from now (extends a pause, never shortens it)."""
        ...


class TokenBucket:
    def __init__(self, name: str, rate_per_second: float, capacity: float, backend: Backend) -> None:
        if rate_per_second <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate_per_second > 0 and capacity >= 1")
        self.name = name
        self.rate = float(rate_per_second)
        self.capacity = float(capacity)
        self.backend = backend

    def try_acquire(self, tokens: float = 1) -> bool:
        """Take ``tokens`` if they are there now; never waits."""
        self._check(tokens)
        return self.backend.take(self.name, tokens, self.rate, self.capacity) == 0.0

    def acquire(self, tokens: float = 1, max_wait: float = 30.0) -> float:
        """Take ``tokens``, waiting for them; returns the seconds waited.

        Raises :class:`RateLimited` (``retry_after`` = the wait still needed) at once when the
        tokens will not be there within ``max_wait`` seconds.
        """
        self._check(tokens)
        started = time.monotonic()
        deadline = started + max_wait
        while True:
            wait = self.backend.take(self.name, tokens, self.rate, self.capacity)
            now = time.monotonic()
            if wait == 0.0:
                return now - started
            if now + wait > deadline:
                raise RateLimited(
                    f"rate limit {self.name!r}: {tokens:g} token(s) need {wait:.2f} s more,"
                    f" beyond max_wait {max_wait:g} s",
                    retry_after=wait,
                )
            # A little jitter so that waiting workers do not all come back at the same instant.
            time.sleep(min(wait * random.uniform(1.0, 1.1), deadline - now))

    def pause(self, seconds: float) -> None:
        """Stop the bucket, for every process sharing it, for ``seconds`` from now."""
        if seconds > 0:
            self.backend.pause(self.name, seconds, self.rate, self.capacity)

    def _check(self, tokens: float) -> None:
        if not 0 < tokens <= self.capacity:
            raise ValueError(f"cannot take {tokens:g} tokens from bucket {self.name!r} of {self.capacity:g}")


class LocalBackend:
    """Buckets in this process's memory, safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # name → (tokens, start)

    def take(self, name: str, tokens: float, rate: float, capacity: float) -> float:
        with self._lock:
            now = time.monotonic()
            have, start = self._refill(name, now, rate, capacity)
            if start > now or have < tokens:
                self._buckets[name] = (have, start)
                return max(1e-6, (start - now) + max(0.0, tokens - have) / rate)
            self._buckets[name] = (have - tokens, start)
            return 0.0

    def pause(self, name: str, seconds: float, rate: float, capacity: float) -> None:
        with self._lock:
            now = time.monotonic()
            have, start = self._refill(name, now, rate, capacity)
            self._buckets[name] = (min(have, 1.0), max(start, now + seconds))

    def _refill(self, name: str, now: float, rate: float, capacity: float) -> tuple[float, float]:
        # Tokens accrue from ``start``, which lies in the future while the bucket is paused.
        have, start = self._buckets.get(name, (capacity, now))
        if now > start:
            have, start = min(capacity, have + (now - start) * rate), now
        return have, start


# The same algorithm as LocalBackend, run atomically inside Redis on the server's clock.
_TAKE_OR_PAUSE = """
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local wanted, pause = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'start')
local tokens = tonumber(state[1]) or capacity
local start = tonumber(state[2]) or now
if now > start then
  tokens = math.min(capacity, tokens + (now - start) * rate)
  start = now
end
local wait = 0
if pause > 0 then
  tokens = math.min(tokens, 1)
  start = math.max(start, now + pause)
elseif start > now or tokens < wanted then
  wait = math.max(0.000001, (start - now) + math.max(0, wanted - tokens) / rate)
else
  tokens = tokens - wanted
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'start', string.format('%.6f', start))
redis.call('PEXPIRE', KEYS[1], math.ceil((start - now + capacity / rate) * 1000) + 60000)
return string.format('%.6f', wait)
"""


class RedisBackend:
    """Buckets in Redis, shared by every process and machine using the same Redis and prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "abohub:ratelimit:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_TAKE_OR_PAUSE)

    def take(self, name: str, tokens: float, rate: float, capacity: float) -> float:
        return self._run(name, rate, capacity, tokens, 0)

    def pause(self, name: str, seconds: float, rate: float, capacity: float) -> None:
        self._run(name, rate, capacity, 0, seconds)

    def _run(self, name: str, rate: float, capacity: float, tokens: float, pause: float) -> float:
        try:
            wait = self._script(keys=[self.prefix + name], args=[rate, capacity, tokens, pause])
        except redis.RedisError as exc:
            raise RetriableError(f"rate limiter {name!r} unavailable: {exc}") from exc
        return float(wait)


_LOCAL = LocalBackend()


@functools.cache
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)  # connects lazily, on first use


def make_bucket(
    name: str, rate_per_second: float, capacity: float, redis_client: redis.Redis | str | None = None
) -> TokenBucket:
    """A bucket in Redis when given a client or URL (shared by all workers), else in this process."""
    if redis_client is None:
        return TokenBucket(name, rate_per_second, capacity, _LOCAL)
    client = _redis_client(redis_client) if isinstance(redis_client, str) else redis_client
    return TokenBucket(name, rate_per_second, capacity, RedisBackend(client))


def window_bucket(
    name: str,
    limit: float,
    window_seconds: float,
    redis_client: redis.Redis | str | None = None,
    *,
    margin_seconds: float = 0.1,
    burst_share: float = 0.02,
) -> TokenBucket:
    """A bucket that keeps under a vendor's ``limit`` requests per rolling ``window_seconds``.

    In any span of time t a bucket lets through at most capacity + rate × t requests, so it is sized
    for capacity + rate × (window + margin) <= limit: a full bucket after an idle spell cannot push
    the window over. The margin covers requests that reach the vendor later or earlier than they
    left. The burst is small (``burst_share`` of the limit) because every token of it is taken off
    the steady rate.
    """
    capacity = max(1.0, limit * burst_share)
    rate = (limit - capacity) / (window_seconds + margin_seconds)
    return make_bucket(name, rate, capacity, redis_client)
