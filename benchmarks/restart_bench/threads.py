"""Calls spread over a few threads, for the set-up and for the bare client's PATCHes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def in_parallel(call: Callable[[T], str], items: Iterable[T], workers: int) -> list[str]:
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        return list(pool.map(call, items))
    finally:
        # On a failure or Ctrl-C the queued calls are dropped instead of run to the end.
        pool.shutdown(wait=True, cancel_futures=True)
