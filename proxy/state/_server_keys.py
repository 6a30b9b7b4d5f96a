"""Counters of one server id: every key a store sees starts with it, so servers sharing a store never share one."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from regogate.proxy.state._store import RateLimitStore, Reservation, ReserveResult, Ticket, Window

__all__ = ["ServerCounters", "counter_key"]


def counter_key(server_id: str, key: str) -> str:
    """The store key of a declared ``<scope>/<counter>`` key for ``server_id``."""
    return f"{server_id}/{key}"


class ServerCounters:
    """A store seen through one server id's keys (for commands that read what ``regogate run`` counted)."""

    def __init__(self, store: RateLimitStore, server_id: str) -> None:
        self._store = store
        self._server_id = server_id

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """See ``RateLimitStore.reserve``."""
        keyed = [dataclasses.replace(i, key=counter_key(self._server_id, i.key)) for i in items]
        return await self._store.reserve(keyed, now)

    async def commit(self, ticket: Ticket) -> None:
        """See ``RateLimitStore.commit``."""
        await self._store.commit(ticket)

    async def rollback(self, ticket: Ticket) -> None:
        """See ``RateLimitStore.rollback``."""
        await self._store.rollback(ticket)

    async def current(self, key: str, window: Window, now: float) -> float:
        """See ``RateLimitStore.current``."""
        return await self._store.current(counter_key(self._server_id, key), window, now)

    async def current_under(self, key_prefix: str, window: Window, now: float) -> dict[str, float]:
        """See ``RateLimitStore.current_under``; the keys come back without the server id."""
        head = counter_key(self._server_id, "")
        found = await self._store.current_under(head + key_prefix, window, now)
        return {key[len(head) :]: value for key, value in found.items()}

    async def ping(self) -> None:
        """See ``RateLimitStore.ping``."""
        await self._store.ping()

    async def aclose(self) -> None:
        """See ``RateLimitStore.aclose``."""
        await self._store.aclose()
