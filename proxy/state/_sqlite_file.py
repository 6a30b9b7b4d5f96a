"""One SQLite file shared by regogate processes: opened private and in WAL mode, used from a worker thread.

Every use runs in a worker thread, one at a time per connection: waiting up to ``BUSY_TIMEOUT`` for
another process's write lock must not stall the event loop (and every other call with it). A
``transaction`` is one ``BEGIN IMMEDIATE``: the write lock is taken before anything is read, so
processes sharing the file see each other's writes whole. The counters and the approvals use it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Final, Literal, TypeVar

import anyio
import anyio.to_thread

from regogate.core import StateError

__all__ = ["BUSY_TIMEOUT", "SqliteFile"]

#: How long an operation waits for another process's write lock before it fails (and denies).
BUSY_TIMEOUT: Final = 2.0
#: The file holds what a user's calls counted and asked: only that user may read or write it.
FILE_MODE: Final = 0o600

_T = TypeVar("_T")


def _private_file(path: str) -> None:
    """Create the file readable by its owner only (SQLite gives its -wal and -shm files the same mode)."""
    if path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)


class SqliteFile:
    """A connection to the SQLite file at ``path``; errors name ``what`` (e.g. ``rate-limit store``) and the path."""

    def __init__(
        self, path: str | Path, *, what: str, schema: str, synchronous: Literal["NORMAL", "FULL"] = "FULL"
    ) -> None:
        """Open (or create, mode 0600) the file and run ``schema``; ``NORMAL`` may lose the last commits in a crash.

        Raises:
            StateError: the file cannot be opened or set up.
        """
        self.path = str(path)
        self._what = what
        self._limiter: anyio.CapacityLimiter | None = None
        try:
            _private_file(self.path)
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{what} {self.path}: cannot open: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
            self._db.executescript(schema)
        except sqlite3.Error as exc:
            self._db.close()
            raise StateError(f"{what} {self.path}: cannot set up: {exc}") from exc

    async def run(self, action: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in a worker thread, one use at a time, as it is (no transaction of its own).

        Raises:
            StateError: SQLite failed (an open transaction is rolled back).
        """
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)

        def guarded() -> _T:
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                # The failure being reported matters more; SQLite also rolls back on close.
                with suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                raise StateError(f"{self._what} {self.path}: {action} failed: {exc}") from exc

        return await anyio.to_thread.run_sync(guarded, limiter=self._limiter)

    async def transaction(self, action: str, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction: committed if it returns, rolled back if it raises.

        Raises:
            StateError: SQLite failed; whatever ``work`` raises passes through after the rollback.
        """

        def whole(db: sqlite3.Connection) -> _T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self.run(action, whole)

    async def aclose(self) -> None:
        """Close the connection (after any use in progress)."""
        if self._limiter is None:
            self._db.close()
            return
        await self.run("close", lambda db: db.close())
