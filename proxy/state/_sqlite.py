"""A rate-limit store in one SQLite file that several regogate processes may share.

A reservation is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the counters
are read, so processes sharing the file never admit more than a limit together. The file is in WAL
mode with ``synchronous=NORMAL`` (a crash may lose the last reservations, never corrupt the file).
Every call runs in a worker thread, one at a time per store: waiting up to ``BUSY_TIMEOUT`` for
another process's write lock must not stall the event loop (and every other call with it).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Final, TypeVar

import anyio
import anyio.to_thread

from regogate.core import StateError
from regogate.proxy.state._store import (
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

#: How long a reservation waits for another process's write lock before it fails (and denies).
BUSY_TIMEOUT: Final = 2.0
#: How often (in clock seconds) buckets whose window has ended are deleted.
PRUNE_INTERVAL: Final = 300.0
#: The file holds what a user's calls counted: only that user may read or write it.
FILE_MODE: Final = 0o600

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
_ADD: Final = (
    "INSERT INTO regogate_counters (prefix, key, span, start, expires, value) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (prefix, key, span, start) DO UPDATE SET value = value + excluded.value"
)
_SUBTRACT: Final = (
    "UPDATE regogate_counters SET value = max(value - ?, 0) WHERE prefix = ? AND key = ? AND span = ? AND start = ?"
)
_PRUNE: Final = "DELETE FROM regogate_counters WHERE expires <= ?"

_T = TypeVar("_T")


def _private_file(path: str) -> None:
    """Create the file readable by its owner only (SQLite gives its -wal and -shm files the same mode)."""
    if path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)


class SqliteStore:
    """Counters in a SQLite file, namespaced by ``prefix``."""

    def __init__(self, path: str | Path, prefix: str = "") -> None:
        """Open (or create) the store at ``path``; a new file is created with mode 0600.

        Raises:
            StateError: the file cannot be opened or set up.
        """
        self._path = str(path)
        self._prefix = prefix
        self._next_prune = 0.0
        self._limiter: anyio.CapacityLimiter | None = None
        try:
            _private_file(self._path)
            self._db = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"rate-limit store {self._path}: cannot open: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StateError(f"rate-limit store {self._path}: cannot set up: {exc}") from exc

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    async def _call(self, action: str, work: Callable[[], _T]) -> _T:
        """Run ``work`` in a worker thread, one call at a time, turning SQLite errors into ``StateError``."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)

        def guarded() -> _T:
            try:
                return work()
            except sqlite3.Error as exc:
                # The failure being reported matters more; SQLite also rolls back on close.
                with suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                raise StateError(f"rate-limit store {self._path}: {action} failed: {exc}") from exc

        return await anyio.to_thread.run_sync(guarded, limiter=self._limiter)

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """See ``RateLimitStore.reserve``; one ``BEGIN IMMEDIATE`` transaction."""
        return await self._call("reserve", lambda: self._reserve(items, now))

    def _reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        db, prefix = self._db, self._prefix
        db.execute("BEGIN IMMEDIATE")
        if now >= self._next_prune:
            db.execute(_PRUNE, (int(now),))
            self._next_prune = now + PRUNE_INTERVAL

        def read(bucket_id: BucketId) -> float:
            row = db.execute(_SELECT, (prefix, *bucket_id)).fetchone()
            return float(row[0]) if row else 0.0

        plan = plan_reservations(items, now, read)
        if isinstance(plan, Refused):
            db.execute("ROLLBACK")
            return plan
        buckets = plan.ticket.buckets
        db.executemany(
            _ADD,
            [(prefix, b.key, b.window, b.start, b.start + WINDOW_SECONDS[b.window], b.cost) for b in buckets],
        )
        db.execute("COMMIT")
        return plan.ticket

    async def commit(self, ticket: Ticket) -> None:
        """Nothing to do: reserved costs are already counted."""

    async def rollback(self, ticket: Ticket) -> None:
        """See ``RateLimitStore.rollback``."""

        def work() -> None:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_SUBTRACT, [(b.cost, self._prefix, b.key, b.window, b.start) for b in ticket.buckets])
            self._db.execute("COMMIT")

        await self._call("rollback", work)

    async def current(self, key: str, window: Window, now: float) -> float:
        """See ``RateLimitStore.current``."""

        def work() -> float:
            row = self._db.execute(_SELECT, (self._prefix, key, window, window_start(window, now))).fetchone()
            return float(row[0]) if row else 0.0

        return await self._call("read", work)

    async def ping(self) -> None:
        """Nothing to check: the store is local and open."""

    async def aclose(self) -> None:
        """Close the database connection (after any call in progress)."""
        if self._limiter is None:
            self._db.close()
            return
        await self._call("close", self._db.close)
