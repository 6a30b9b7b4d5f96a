"""Approvals in a SQLite file: the default for one machine, shared by every regogate process using it.

Each operation is one ``BEGIN IMMEDIATE`` transaction run in a worker thread (the counters'
``SqliteFile``), so a busy lock held by another process never stalls the event loop, and ``consume``
stays single-use across processes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from regogate.proxy.approval._record import Approval
from regogate.proxy.approval._store import check_answerable
from regogate.proxy.state import SqliteFile

__all__ = ["SqliteApprovalStore"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS regogate_approvals (
    prefix    TEXT NOT NULL,
    id        TEXT NOT NULL,
    server_id TEXT NOT NULL,
    tool      TEXT NOT NULL,
    digest    TEXT NOT NULL,
    created   REAL NOT NULL,
    record    TEXT NOT NULL,
    PRIMARY KEY (prefix, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS regogate_approvals_call ON regogate_approvals (prefix, server_id, tool, digest);
"""

_T = TypeVar("_T")


class SqliteApprovalStore:
    """Approvals in the SQLite file at ``path``, namespaced by ``prefix``."""

    def __init__(self, path: str | Path, prefix: str = "") -> None:
        """Open (or create) the approvals table in ``path``.

        Raises:
            StateError: the file cannot be opened or set up.
        """
        self._file = SqliteFile(path, what="approval store", schema=_SCHEMA)
        self._prefix = prefix

    async def _run(self, job: Callable[[sqlite3.Connection], _T]) -> _T:
        return await self._file.transaction("approval", job)

    def _rows(self, db: sqlite3.Connection, where: str, *args: object) -> list[Approval]:
        cursor = db.execute(
            f"SELECT record FROM regogate_approvals WHERE prefix = ? {where} ORDER BY created", (self._prefix, *args)
        )
        return [Approval.from_json(json.loads(row[0])) for row in cursor]

    def _save(self, db: sqlite3.Connection, approval: Approval) -> None:
        db.execute(
            "INSERT INTO regogate_approvals (prefix, id, server_id, tool, digest, created, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (prefix, id) DO UPDATE SET record = excluded.record",
            (
                self._prefix,
                approval.id,
                approval.server_id,
                approval.tool,
                approval.digest,
                approval.created,
                json.dumps(approval.to_json()),
            ),
        )

    def _live(self, db: sqlite3.Connection, server_id: str, tool: str, digest: str, now: float) -> Approval | None:
        for approval in self._rows(db, "AND server_id = ? AND tool = ? AND digest = ?", server_id, tool, digest):
            if approval.effective_status(now) in ("pending", "approved"):
                return approval
        return None

    async def request(self, approval: Approval, now: float) -> Approval:
        def job(db: sqlite3.Connection) -> Approval:
            existing = self._live(db, approval.server_id, approval.tool, approval.digest, now)
            if existing is not None:
                return existing
            self._save(db, approval)
            return approval

        return await self._run(job)

    async def answer(
        self, approval_id: str, *, approve: bool, by: str, reason: str | None, via: str, now: float
    ) -> Approval:
        def job(db: sqlite3.Connection) -> Approval:
            found = self._rows(db, "AND id = ?", approval_id)
            approval = check_answerable(found[0] if found else None, approval_id, now)
            answered = approval.answered(approve=approve, by=by, at=now, reason=reason, via=via)
            self._save(db, answered)
            return answered

        return await self._run(job)

    async def consume(self, server_id: str, tool: str, digest: str, now: float) -> Approval | None:
        def job(db: sqlite3.Connection) -> Approval | None:
            approval = self._live(db, server_id, tool, digest, now)
            if approval is None or approval.status != "approved":
                return None
            used = Approval.from_json({**approval.to_json(), "status": "used"})
            self._save(db, used)
            return used

        return await self._run(job)

    async def get(self, approval_id: str) -> Approval | None:
        found = await self._run(lambda db: self._rows(db, "AND id = ?", approval_id))
        return found[0] if found else None

    async def list(self) -> list[Approval]:
        return await self._run(lambda db: self._rows(db, ""))

    async def aclose(self) -> None:
        await self._file.aclose()
