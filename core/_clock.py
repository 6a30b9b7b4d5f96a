"""The one source of wall-clock time, injected so tests can move it."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FileClock", "SystemClock"]


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
