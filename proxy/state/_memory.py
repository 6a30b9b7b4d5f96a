"""A rate-limit store in this process's memory: counters last as long as the proxy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from regogate.proxy.state._store import (
    WINDOW_SECONDS,
    Bucket,
    Refused,
    Reservation,
    ReserveResult,
    Ticket,
    Window,
    window_start,
)

__all__ = ["MemoryStore"]

#: How often (in clock seconds) buckets whose window has ended are dropped.
PRUNE_INTERVAL: Final = 60.0

_BucketId = tuple[str, Window, int]


class MemoryStore:
    """Counters in a dict; atomic because no method awaits between reading and writing."""

    def __init__(self) -> None:
        self._values: dict[_BucketId, float] = {}
        self._next_prune = 0.0

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """See ``RateLimitStore.reserve``."""
        if now >= self._next_prune:
            self._prune(now)
        pending: dict[_BucketId, float] = {}
        buckets: list[Bucket] = []
        for index, item in enumerate(items):
            bucket_id = (item.key, item.window, window_start(item.window, now))
            value = pending.get(bucket_id)
            if value is None:
                value = self._values.get(bucket_id, 0.0)
            if item.limit is not None and value + item.cost > item.limit:
                return Refused(index=index, reservation=item, current=value)
            pending[bucket_id] = value + item.cost
            buckets.append(Bucket(item.key, item.window, bucket_id[2], item.cost))
        self._values.update(pending)
        return Ticket(tuple(buckets))

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
