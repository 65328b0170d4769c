"""The one way tests wait for something that happens on another thread or process."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["poll", "wait_until"]


def poll(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Whether ``predicate`` became true within ``timeout`` seconds (asked once more at the end)."""
    # A bound, not a speed check: CI machines are loaded, so callers pass generous timeouts.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_until(
    predicate: Callable[[], bool],
    what: str,
    timeout: float = 20.0,
    interval: float = 0.01,
    detail: Callable[[], str] | None = None,
) -> None:
    """Return once ``predicate`` is true; fail saying ``what`` (and ``detail()``) after ``timeout`` s."""
    if not poll(predicate, timeout, interval):
        more = f"\n{detail()}" if detail is not None else ""
        raise AssertionError(f"gave up after {timeout:g} s waiting for {what}{more}")
