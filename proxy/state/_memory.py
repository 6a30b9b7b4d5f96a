"""A rate-limit store in this process's memory: counters last as long as the proxy."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final

from regogate.proxy.state._store import (
    MAX_LISTED,
    WINDOW_SECONDS,
    BucketId,
    Refused,
    Reservation,
    ReserveResult,
    Ticket,
    Window,
    plan_reservations,
    window_start,
)

__all__ = ["MemoryStore"]

#: How often (in clock seconds) buckets whose window has ended are dropped.
PRUNE_INTERVAL: Final = 60.0


class MemoryStore:
    """Counters in a dict; atomic because no method awaits between reading and writing."""

    def __init__(self) -> None:
        self._values: dict[BucketId, float] = {}
        self._next_prune = 0.0

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """See ``RateLimitStore.reserve``."""
        if now >= self._next_prune:
            self._prune(now)
        plan = plan_reservations(items, now, self._read)
        if isinstance(plan, Refused):
            return plan
        self._values.update(plan.totals)
        return plan.ticket

    def _read(self, bucket_id: BucketId) -> float:
        return self._values.get(bucket_id, 0.0)

    async def commit(self, ticket: Ticket) -> None:
        """Nothing to do: reserved costs are already counted."""

    async def rollback(self, ticket: Ticket) -> None:
        """See ``RateLimitStore.rollback``; a bucket already pruned is left alone."""
        for bucket in ticket.buckets:
            bucket_id = (bucket.key, bucket.window, bucket.start)
            value = self._values.get(bucket_id)
            if value is None:
                continue
            remaining = value - bucket.cost
            if remaining > 0:
                self._values[bucket_id] = remaining
            else:
                del self._values[bucket_id]

    async def current(self, key: str, window: Window, now: float) -> float:
        """See ``RateLimitStore.current``."""
        return self._values.get((key, window, window_start(window, now)), 0.0)

    async def current_under(self, key_prefix: str, window: Window, now: float) -> dict[str, float]:
        """See ``RateLimitStore.current_under``."""
        start = window_start(window, now)
        found = ((k, v) for (k, w, s), v in self._values.items() if w == window and s == start)
        return dict(itertools.islice(((k, v) for k, v in found if k.startswith(key_prefix)), MAX_LISTED))

    async def ping(self) -> None:
        """Nothing to check: the store is local and open."""

    async def aclose(self) -> None:
        """Drop every counter."""
        self._values.clear()

    def _prune(self, now: float) -> None:
        expired = [b for b in self._values if b[2] + WINDOW_SECONDS[b[1]] <= now]
        for bucket_id in expired:
            del self._values[bucket_id]
        self._next_prune = now + PRUNE_INTERVAL
