"""A rate-limit store in one SQLite file that several regogate processes may share.

A reservation is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the counters
are read, so processes sharing the file never admit more than a limit together. The file is in WAL
mode with ``synchronous=NORMAL`` (a crash may lose the last reservations, never corrupt the file).
Every call runs in a worker thread, one at a time per store (``SqliteFile``): waiting up to
``BUSY_TIMEOUT`` for another process's write lock must not stall the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from regogate.proxy.state._sqlite_file import SqliteFile
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

__all__ = ["SqliteStore"]

#: How often (in clock seconds) buckets whose window has ended are deleted.
PRUNE_INTERVAL: Final = 300.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS regogate_counters (
    prefix  TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    span    TEXT    NOT NULL,
    start   INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    value   REAL    NOT NULL,
    PRIMARY KEY (prefix, key, span, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS regogate_counters_expires ON regogate_counters (expires);
"""
_SELECT: Final = "SELECT value FROM regogate_counters WHERE prefix = ? AND key = ? AND span = ? AND start = ?"
_SELECT_UNDER: Final = (
    "SELECT key, value FROM regogate_counters WHERE prefix = ? AND span = ? AND start = ? AND substr(key, 1, ?) = ? "
    "LIMIT ?"
)
_ADD: Final = (
    "INSERT INTO regogate_counters (prefix, key, span, start, expires, value) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (prefix, key, span, start) DO UPDATE SET value = value + excluded.value"
)
_SUBTRACT: Final = (
    "UPDATE regogate_counters SET value = max(value - ?, 0) WHERE prefix = ? AND key = ? AND span = ? AND start = ?"
)
_PRUNE: Final = "DELETE FROM regogate_counters WHERE expires <= ?"


class SqliteStore:
    """Counters in a SQLite file, namespaced by ``prefix``."""

    def __init__(self, path: str | Path, prefix: str = "") -> None:
        """Open (or create) the store at ``path``; a new file is created with mode 0600.

        Raises:
            StateError: the file cannot be opened or set up.
        """
        self._file = SqliteFile(path, what="rate-limit store", schema=_SCHEMA, synchronous="NORMAL")
        self._prefix = prefix
        self._next_prune = 0.0

    @property
    def path(self) -> str:
        """The database file."""
        return self._file.path

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """See ``RateLimitStore.reserve``; one ``BEGIN IMMEDIATE`` transaction."""
        return await self._file.transaction("reserve", lambda db: self._reserve(db, items, now))

    def _reserve(self, db: sqlite3.Connection, items: Sequence[Reservation], now: float) -> ReserveResult:
        prefix = self._prefix
        if now >= self._next_prune:
            db.execute(_PRUNE, (int(now),))
            self._next_prune = now + PRUNE_INTERVAL

        def read(bucket_id: BucketId) -> float:
            row = db.execute(_SELECT, (prefix, *bucket_id)).fetchone()
            return float(row[0]) if row else 0.0

        plan = plan_reservations(items, now, read)
        if isinstance(plan, Refused):
            return plan
        buckets = plan.ticket.buckets
        db.executemany(
            _ADD,
            [(prefix, b.key, b.window, b.start, b.start + WINDOW_SECONDS[b.window], b.cost) for b in buckets],
        )
        return plan.ticket

    async def commit(self, ticket: Ticket) -> None:
        """Nothing to do: reserved costs are already counted."""

    async def rollback(self, ticket: Ticket) -> None:
        """See ``RateLimitStore.rollback``."""

        rows = [(b.cost, self._prefix, b.key, b.window, b.start) for b in ticket.buckets]
        await self._file.transaction("rollback", lambda db: db.executemany(_SUBTRACT, rows))

    async def current(self, key: str, window: Window, now: float) -> float:
        """See ``RateLimitStore.current``."""

        def work(db: sqlite3.Connection) -> float:
            row = db.execute(_SELECT, (self._prefix, key, window, window_start(window, now))).fetchone()
            return float(row[0]) if row else 0.0

        return await self._file.run("read", work)

    async def current_under(self, key_prefix: str, window: Window, now: float) -> dict[str, float]:
        """See ``RateLimitStore.current_under``."""
        args = (self._prefix, window, window_start(window, now), len(key_prefix), key_prefix, MAX_LISTED)

        def work(db: sqlite3.Connection) -> dict[str, float]:
            return {str(key): float(value) for key, value in db.execute(_SELECT_UNDER, args)}

        return await self._file.run("read", work)

    async def ping(self) -> None:
        """Nothing to check: the store is local and open."""

    async def aclose(self) -> None:
        """Close the database connection (after any call in progress)."""
        await self._file.aclose()
