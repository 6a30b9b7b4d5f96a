"""The one source of wall-clock time, injected so tests can move it."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FileClock", "SystemClock", "utc_second"]


@functools.lru_cache(maxsize=4)
def utc_second(second: int) -> str:
    """Unix second ``second`` as RFC 3339 UTC up to the seconds, without the zone (``2026-11-27T01:02:03``).

    Callers add the fraction and ``Z``. Cached: every decision and audit event of one second shares the
    text, and formatting it was ~2% of a decided call's cost.
    """
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Clock(Protocol):
    """Tells the current time."""

    def now(self) -> float:
        """Return the current time in unix seconds (UTC)."""
        ...


class SystemClock:
    """The real clock: ``time.time()``."""

    __slots__ = ()

    def now(self) -> float:
        """Return the current time in unix seconds (UTC)."""
        return time.time()


class FileClock:
    """For tests only: the unix seconds written in a file, read on every call (``REGOGATE_TEST_CLOCK``)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def now(self) -> float:
        """Return the time the file holds."""
        with open(self.path, encoding="utf-8") as handle:
            return float(handle.read().strip())
