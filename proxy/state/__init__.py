"""Rate-limit state: OPA declares the limits of a call, a store counts them atomically.

``open_store`` picks a store from a spec (``default_state_spec()`` when the user names none):
``memory``, ``sqlite:///path/to/file.db`` or a bare path
ending in ``.db``, ``.sqlite`` or ``.sqlite3``, or ``redis://[user:pass@]host:port/db`` (``rediss://``
for TLS) for a budget shared by proxies on many hosts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from regogate.core import ConfigError
from regogate.proxy.state._location import default_state_spec
from regogate.proxy.state._memory import MemoryStore
from regogate.proxy.state._server_keys import ServerCounters, counter_key
from regogate.proxy.state._sqlite import SqliteStore
from regogate.proxy.state._sqlite_file import SqliteFile
from regogate.proxy.state._store import (
    WINDOW_SECONDS,
    Bucket,
    RateLimitStore,
    Refused,
    Reservation,
    ReserveResult,
    Ticket,
    Window,
    window_start,
)

if TYPE_CHECKING:
    from regogate.proxy.state._redis import RedisStore, redis_call

__all__ = [
    "WINDOW_SECONDS",
    "Bucket",
    "MemoryStore",
    "RateLimitStore",
    "RedisStore",
    "Refused",
    "Reservation",
    "ReserveResult",
    "ServerCounters",
    "SqliteFile",
    "SqliteStore",
    "Ticket",
    "Window",
    "counter_key",
    "default_state_spec",
    "open_store",
    "parse_store_spec",
    "redis_call",
    "window_start",
]

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_REDIS_SCHEMES = ("redis://", "rediss://")


def __getattr__(name: str) -> object:
    # redis-py costs ~20 MB of memory and a noticeable share of start-up: only Redis users import it.
    if name == "RedisStore":
        from regogate.proxy.state._redis import RedisStore

        return RedisStore
    if name == "redis_call":
        from regogate.proxy.state._redis import redis_call

        return redis_call
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_store_spec(spec: str) -> tuple[Literal["memory", "sqlite", "redis"], str]:
    """What kind of store ``spec`` names, and where: ``""`` for memory, the file for SQLite, the URL for Redis.

    Raises:
        ConfigError: ``spec`` names no known store.
    """
    if spec == "memory":
        return "memory", ""
    if spec.startswith(_REDIS_SCHEMES):
        return "redis", spec
    if spec.startswith("sqlite://"):
        path = spec.removeprefix("sqlite://")
        if not path:
            raise ConfigError(f"state store {spec!r} names no file (expected sqlite:///path/to/state.db)")
        return "sqlite", path
    if "://" not in spec and spec.endswith(_SQLITE_SUFFIXES):
        return "sqlite", spec
    raise ConfigError(
        f"unknown state store {spec!r}: use memory, sqlite:///path/to/state.db, redis://host:port/db or a path "
        "ending in " + ", ".join(_SQLITE_SUFFIXES)
    )


def open_store(spec: str, prefix: str = "") -> RateLimitStore:
    """Open the store ``spec`` names; ``prefix`` namespaces counters in a shared store.

    Raises:
        ConfigError: ``spec`` names no known store, or a Redis URL regogate cannot use.
        StateError: the store cannot be opened.
    """
    kind, where = parse_store_spec(spec)
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        from regogate.proxy.state._redis import RedisStore

        return RedisStore(where, prefix)
    return SqliteStore(where, prefix)
