"""The contract every rate-limit store keeps: all-or-nothing reservations in calendar-aligned UTC windows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from regogate.core import Window

__all__ = [
    "WINDOW_SECONDS",
    "Bucket",
    "BucketId",
    "Plan",
    "RateLimitStore",
    "Refused",
    "Reservation",
    "ReserveResult",
    "Ticket",
    "Window",
    "plan_reservations",
    "window_start",
]

#: Window lengths; unix time has no leap seconds, so flooring to these aligns with UTC.
WINDOW_SECONDS: Final[dict[Window, int]] = {"minute": 60, "hour": 3600, "day": 86400}


MAX_LISTED = 10_000
"""Most keys ``current_under`` returns: a listing for people to read, not an export."""


def window_start(window: Window, now: float) -> int:
    """The unix second at which the ``window`` containing ``now`` began (UTC-aligned)."""
    length = WINDOW_SECONDS[window]
    return int(now // length) * length


@dataclass(frozen=True, slots=True)
class Reservation:
    """One declaration to count: add ``cost`` to ``key`` in its current ``window``.

    ``limit=None`` counts without limiting; otherwise the call is admitted iff the counter's value
    plus ``cost`` stays ``<= limit``, or ``< limit`` when ``exclusive``.
    """

    key: str
    limit: float | None
    window: Window
    cost: float
    exclusive: bool = field(default=False, kw_only=True)

    def admits(self, value: float) -> bool:
        """Whether adding ``cost`` to ``value`` keeps within the limit."""
        if self.limit is None:
            return True
        total = value + self.cost
        return total < self.limit if self.exclusive else total <= self.limit


@dataclass(frozen=True, slots=True)
class Bucket:
    """One counter in one window: what a ticket added, and where."""

    key: str
    window: Window
    start: int
    cost: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof of an admitted reservation; hand it to ``commit`` or ``rollback``."""

    buckets: tuple[Bucket, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """The first reservation that would exceed its limit; nothing was added."""

    index: int
    reservation: Reservation
    current: float


ReserveResult = Ticket | Refused

#: A counter in one window: (key, window, the window's start).
BucketId = tuple[str, Window, int]


@dataclass(frozen=True, slots=True)
class Plan:
    """What an admitted reservation changes: each touched bucket's new value, and its ticket."""

    totals: dict[BucketId, float]
    ticket: Ticket


def plan_reservations(items: Sequence[Reservation], now: float, read: Callable[[BucketId], float]) -> Plan | Refused:
    """Check ``items`` in order against the values ``read`` returns, each seeing what earlier items added.

    The one reserve rule every store applies inside its own atomic step (a local store's
    ``read`` must not await, a SQL store's runs inside its transaction).
    """
    totals: dict[BucketId, float] = {}
    buckets: list[Bucket] = []
    for index, item in enumerate(items):
        start = window_start(item.window, now)
        bucket_id = (item.key, item.window, start)
        value = totals.get(bucket_id)
        if value is None:
            value = read(bucket_id)
        if not item.admits(value):
            return Refused(index=index, reservation=item, current=value)
        totals[bucket_id] = value + item.cost
        buckets.append(Bucket(item.key, item.window, start, item.cost))
    return Plan(totals, Ticket(tuple(buckets)))


class RateLimitStore(Protocol):
    """Counts rate-limited calls. Every method may raise ``StateError``."""

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """Add every item's cost, or none of them if any would exceed its limit.

        Items are checked in order, each seeing what the earlier items of the same call added.

        Raises:
            StateError: the store failed. Nothing was admitted; a remote store that timed out after
                applying the reservation may keep it counted, which can only deny more, never admit more.
        """
        ...

    async def commit(self, ticket: Ticket) -> None:
        """Keep what ``ticket`` added (the forwarded call succeeded)."""
        ...

    async def rollback(self, ticket: Ticket) -> None:
        """Subtract exactly what ``ticket`` added, from the same buckets, even if their window ended.

        Raises:
            StateError: the store failed.
        """
        ...

    async def current(self, key: str, window: Window, now: float) -> float:
        """The value of ``key`` in the ``window`` containing ``now`` (0 when never counted).

        Raises:
            StateError: the store failed.
        """
        ...

    async def current_under(self, key_prefix: str, window: Window, now: float) -> dict[str, float]:
        """Every key that starts with ``key_prefix`` and counted in the ``window`` containing ``now``, with its value.

        For reading what was counted per caller (``per: principal``); at most ``MAX_LISTED`` keys.

        Raises:
            StateError: the store failed.
        """
        ...

    async def ping(self) -> None:
        """Check that the store answers (at start-up, so a missing server is reported at once).

        Raises:
            StateError: the store did not answer.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's resources."""
        ...
