"""Human approval of calls a policy marks ``require_approval``: the record, and where approvals are kept.

Approvals live next to the rate-limit counters: the same ``--state`` spec names the store (the SQLite
file for one machine, Redis for a team, memory when only in-band answers are possible).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regogate.proxy.approval._record import (
    PREVIEW_BYTES,
    Approval,
    ApprovalStatus,
    arguments_digest,
    arguments_preview,
    new_approval_id,
)
from regogate.proxy.approval._sqlite import SqliteApprovalStore
from regogate.proxy.approval._store import ApprovalError, ApprovalStore, MemoryApprovalStore
from regogate.proxy.state import parse_store_spec

if TYPE_CHECKING:
    from regogate.proxy.approval._redis import RedisApprovalStore

__all__ = [
    "PREVIEW_BYTES",
    "Approval",
    "ApprovalError",
    "ApprovalStatus",
    "ApprovalStore",
    "MemoryApprovalStore",
    "RedisApprovalStore",
    "SqliteApprovalStore",
    "arguments_digest",
    "arguments_preview",
    "new_approval_id",
    "open_approval_store",
]


def __getattr__(name: str) -> object:
    # redis-py costs ~20 MB of memory and a share of start-up: only Redis users import it.
    if name == "RedisApprovalStore":
        from regogate.proxy.approval._redis import RedisApprovalStore

        return RedisApprovalStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_approval_store(spec: str, prefix: str = "") -> ApprovalStore:
    """Open the approval store that the state spec ``spec`` names (as ``--state`` takes it).

    Raises:
        ConfigError: ``spec`` names no known store.
        StateError: the store cannot be opened.
    """
    kind, where = parse_store_spec(spec)
    if kind == "memory":
        return MemoryApprovalStore()
    if kind == "redis":
        from regogate.proxy.approval._redis import RedisApprovalStore

        return RedisApprovalStore(where, prefix)
    return SqliteApprovalStore(where, prefix)
