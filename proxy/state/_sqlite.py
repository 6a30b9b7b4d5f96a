"""A rate-limit store in one SQLite file that several regogate processes may share.

A reservation is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the counters
are read, so processes sharing the file never admit more than a limit together. The file is in WAL
mode with ``synchronous=NORMAL`` (a crash may lose the last reservations, never corrupt the file).
Calls are made directly on the event loop: a reservation costs tens of microseconds (see
tests/proxy/test_ratelimit.py), less than handing it to a thread would. A writer in another process
can make one block for up to ``BUSY_TIMEOUT``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Final

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


class SqliteStore:
    """Counters in a SQLite file, namespaced by ``prefix`` (e.g. the server id)."""

    def __init__(self, path: str | Path, prefix: str = "") -> None:
        """Open (or create) the store at ``path``.

        Raises:
            StateError: the file cannot be opened or set up.
        """
        self._path = str(path)
        self._prefix = prefix
        self._next_prune = 0.0
        try:
            self._db = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateError(f"rate-limit store {self._path}: cannot open: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StateError(f"rate-limit store {self._path}: cannot set up: {exc}") from exc

    def _fail(self, action: str, exc: sqlite3.Error) -> StateError:
        # The failure being reported matters more; SQLite also rolls back on close.
        with suppress(sqlite3.Error):
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        return StateError(f"rate-limit store {self._path}: {action} failed: {exc}")

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """See ``RateLimitStore.reserve``; one ``BEGIN IMMEDIATE`` transaction."""
        db, prefix = self._db, self._prefix
        try:
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
        except sqlite3.Error as exc:
            raise self._fail("reserve", exc) from exc
        return plan.ticket

    async def commit(self, ticket: Ticket) -> None:
        """Nothing to do: reserved costs are already counted."""

    async def rollback(self, ticket: Ticket) -> None:
        """See ``RateLimitStore.rollback``."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_SUBTRACT, [(b.cost, self._prefix, b.key, b.window, b.start) for b in ticket.buckets])
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail("rollback", exc) from exc

    async def current(self, key: str, window: Window, now: float) -> float:
        """See ``RateLimitStore.current``."""
        try:
            row = self._db.execute(_SELECT, (self._prefix, key, window, window_start(window, now))).fetchone()
        except sqlite3.Error as exc:
            raise self._fail("read", exc) from exc
        return float(row[0]) if row else 0.0

    async def ping(self) -> None:
        """Nothing to check: the store is local and open."""

    async def aclose(self) -> None:
        """Close the database connection."""
        self._db.close()
