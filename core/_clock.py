"""The one source of wall-clock time, injected so tests can move it."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


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
