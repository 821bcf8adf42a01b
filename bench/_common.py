"""Helpers shared by the benchmarks: a throwaway PostgreSQL database and timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(admin_url: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """A new, empty database ``name`` (dropped first if it exists); dropped again afterwards."""
    drop_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(admin_url, name)
    finally:
        if not keep:
            drop_database(admin_url, name)


def timings(action: Callable[[], Any], runs: int, *, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``runs`` calls of ``action``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        action()
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - began)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def describe(values: list[float]) -> str:
    return f"median {median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, {len(values)} runs)"
