"""A rate-limit store in Redis, so regogate processes on many hosts share one budget exactly.

A reservation is one Lua script: it checks every declaration's limit, and only if all pass adds
every cost, so concurrent proxies never admit more than a limit together. A rollback is a second
script. Each counter lives under ``<prefix>:regogate:<key>:<window>:<window_start>`` and expires
``EXPIRY_MARGIN`` seconds after its window ends; the expiry is relative to the caller's clock, so
it does not depend on Redis's clock agreeing with the proxy's.

Keys carry no ``{hash tag}``: a script touches the keys of several declarations, so Redis Cluster
would need them in one slot. Cluster is not supported; a primary (with replicas or Sentinel in
front of it) is.

Every wait is bounded: connecting, reading a reply and waiting for a pooled connection each have a
timeout, and each call as a whole has ``CALL_TIMEOUT``. Any failure becomes ``StateError`` naming
the server's ``host:port``. The pool reconnects on the next call once Redis is back.

redis-py's asyncio client needs the asyncio backend of anyio (not trio).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final
from urllib.parse import parse_qsl, urlsplit

import anyio
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from regogate.core import ConfigError, StateError
from regogate.proxy.state._store import (
    MAX_LISTED,
    WINDOW_SECONDS,
    Bucket,
    Refused,
    Reservation,
    ReserveResult,
    Ticket,
    Window,
    window_start,
)

__all__ = ["CALL_TIMEOUT", "EXPIRY_MARGIN", "RedisStore", "bucket_key", "redis_call"]

#: Connecting to Redis on a LAN takes milliseconds; a second means the host is down or filtered.
CONNECT_TIMEOUT: Final = 1.0
#: A script over a handful of keys runs in microseconds; a reply this late means Redis is stalled.
READ_TIMEOUT: Final = 1.0
#: One proxy serves one MCP client (a gateway a few), so a few connections cover its concurrent calls.
POOL_SIZE: Final = 8
#: Retries after a connection error, to replace a pooled socket that Redis closed while idle.
#: Timeouts are not retried: the script may have run, and running it twice would count twice.
CONNECTION_RETRIES: Final = 1
#: Ceiling on one store call however the waits above add up; the tools/call waits no longer.
CALL_TIMEOUT: Final = 3.0
#: Waiting for a free pooled connection is backpressure, not a fault: many calls in flight queue
#: for the pool, and only the call's own ceiling ends the wait (a shorter bound denied calls
#: of a busy but healthy proxy).
POOL_TIMEOUT: Final = CALL_TIMEOUT
#: Seconds a bucket outlives its window, so a rollback of a call that straddled the window's end
#: still finds it.
EXPIRY_MARGIN: Final = 60
#: Port a redis:// URL means when it names none.
DEFAULT_PORT: Final = 6379

# KEYS[i] is declaration i's bucket; ARGV holds (cost, limit or "", ttl) for each in turn; a limit
# written "<N" is exclusive (the counter must stay below N).
# Returns {0} when every cost was added, or {i, value} for the first refused declaration (1-based),
# with the value it saw as a %.17g string (exact for a double; a Lua number reply would truncate).
_RESERVE: Final = """
local seen = {}
for i, key in ipairs(KEYS) do
  local cost = tonumber(ARGV[3 * i - 2])
  local limit = ARGV[3 * i - 1]
  local value = seen[key]
  if value == nil then
    value = tonumber(redis.call('GET', key) or '0')
  end
  if limit ~= '' then
    local exclusive = string.sub(limit, 1, 1) == '<'
    local bound = tonumber(exclusive and string.sub(limit, 2) or limit)
    if value + cost > bound or (exclusive and value + cost >= bound) then
      return {i, string.format('%.17g', value)}
    end
  end
  seen[key] = value + cost
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBYFLOAT', key, ARGV[3 * i - 2])
  redis.call('EXPIRE', key, ARGV[3 * i])
end
return {0}
"""

# KEYS[i] is a bucket, ARGV[i] the negated cost a reservation added to it. A bucket that expired is
# left alone; one that would reach 0 or less is deleted, so no counter goes below 0.
_ROLLBACK: Final = """
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value then
    if tonumber(value) + tonumber(ARGV[i]) > 0 then
      redis.call('INCRBYFLOAT', key, ARGV[i])
    else
      redis.call('DEL', key)
    end
  end
end
return 0
"""


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def bucket_key(prefix: str, key: str, window: Window, start: int) -> str:
    """The Redis key of one counter: ``<prefix>:regogate:<key>:<window>:<window_start>``.

    A prefix that already ends in ``:`` is not given a second one; no prefix, no separator.
    """
    separator = ":" if prefix and not prefix.endswith(":") else ""
    return f"{prefix}{separator}regogate:{key}:{window}:{start}"


def _number(value: float) -> str:
    # repr is the shortest text that parses back to the same double, in Lua and in Redis alike.
    return repr(float(value))


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:" if parts.username else ":"
    return parts._replace(netloc=f"{user}***@{netloc}").geturl()


def _server(url: str) -> str:
    """Check ``url`` and return the ``host:port`` it names.

    Raises:
        ConfigError: not a ``redis://`` or ``rediss://`` URL regogate can use.
    """
    shown = _redacted(url)
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError(f"state store {shown!r}: {exc}") from exc
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"state store {shown!r}: expected redis://[user:pass@]host:port/db or rediss://…")
    if not parts.hostname:
        raise ConfigError(f"state store {shown!r} names no host (expected redis://host:port/db)")
    if parts.path not in ("", "/") and not parts.path[1:].isdigit():
        raise ConfigError(f"state store {shown!r}: the path must be a database number, as in /0")
    # Timeouts and pool size are regogate's to set; only TLS settings may come from the URL.
    options = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    unknown = sorted(n for n in options if parts.scheme != "rediss" or not n.startswith("ssl_"))
    if unknown or parts.fragment:
        raise ConfigError(
            f"state store {shown!r}: unsupported URL options {', '.join(unknown) or '#' + parts.fragment}"
            " (only ssl_* options, on rediss://)"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


class RedisStore:
    """Counters in Redis, namespaced by ``prefix`` (e.g. ``"team-a:"``)."""

    def __init__(self, url: str, prefix: str = "") -> None:
        """Prepare a connection pool for ``url``; nothing connects until the first call.

        Raises:
            ConfigError: ``url`` is not a usable ``redis://`` or ``rediss://`` URL.
        """
        self._where = _server(url)
        self._prefix = prefix
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=POOL_SIZE,
                timeout=POOL_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=READ_TIMEOUT,
                retry=Retry(NoBackoff(), CONNECTION_RETRIES, supported_errors=(RedisConnectionError,)),
            )
        except ValueError as exc:
            raise ConfigError(f"state store {_redacted(url)!r}: {exc}") from exc
        self._redis = Redis.from_pool(pool)
        self._reserve = self._redis.register_script(_RESERVE)
        self._rollback = self._redis.register_script(_ROLLBACK)

    @property
    def server(self) -> str:
        """The ``host:port`` this store talks to (what its errors name)."""
        return self._where

    def _guard(self, action: str) -> AbstractAsyncContextManager[None]:
        return redis_call(f"rate-limit store redis {self._where}", action, CALL_TIMEOUT)

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        """See ``RateLimitStore.reserve``; one Lua script."""
        buckets = [Bucket(i.key, i.window, window_start(i.window, now), i.cost) for i in items]
        if not buckets:
            return Ticket(())
        keys = [bucket_key(self._prefix, b.key, b.window, b.start) for b in buckets]
        args: list[str] = []
        for item, bucket in zip(items, buckets, strict=True):
            ttl = math.ceil(bucket.start + WINDOW_SECONDS[bucket.window] - now) + EXPIRY_MARGIN
            limit = "" if item.limit is None else ("<" if item.exclusive else "") + _number(item.limit)
            args += [_number(item.cost), limit, str(ttl)]
        async with self._guard("reserve"):
            reply = await self._reserve(keys=keys, args=args)
        index = int(reply[0])
        if index == 0:
            return Ticket(tuple(buckets))
        return Refused(index=index - 1, reservation=items[index - 1], current=float(reply[1]))

    async def commit(self, ticket: Ticket) -> None:
        """Nothing to do: reserved costs are already counted."""

    async def rollback(self, ticket: Ticket) -> None:
        """See ``RateLimitStore.rollback``; one Lua script. A bucket that already expired is left alone."""
        if not ticket.buckets:
            return
        keys = [bucket_key(self._prefix, b.key, b.window, b.start) for b in ticket.buckets]
        async with self._guard("rollback"):
            await self._rollback(keys=keys, args=[_number(-b.cost) for b in ticket.buckets])

    async def current(self, key: str, window: Window, now: float) -> float:
        """See ``RateLimitStore.current``."""
        async with self._guard("read"):
            value = await self._redis.get(bucket_key(self._prefix, key, window, window_start(window, now)))
        return 0.0 if value is None else float(value)

    async def current_under(self, key_prefix: str, window: Window, now: float) -> dict[str, float]:
        """See ``RateLimitStore.current_under``."""
        start = window_start(window, now)
        tail = f":{window}:{start}"
        head = bucket_key(self._prefix, "", window, start).removesuffix(tail)  # "<prefix>:regogate:"
        pattern = _glob_escape(head + key_prefix) + "*" + _glob_escape(tail)
        keys: list[str] = []
        async with self._guard("read"):
            async for name in self._redis.scan_iter(match=pattern, count=1000):
                text = name.decode() if isinstance(name, bytes) else str(name)
                if text.endswith(tail) and len(keys) < MAX_LISTED:
                    keys.append(text)
            values = await self._redis.mget(keys) if keys else []
        return {k[len(head) : -len(tail)]: float(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def ping(self) -> None:
        """Check that Redis answers, e.g. at startup so a missing server fails fast.

        Raises:
            StateError: Redis did not answer.
        """
        async with self._guard("ping"):
            await self._redis.ping()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        with anyio.move_on_after(CALL_TIMEOUT, shield=True):
            await self._redis.aclose()


@asynccontextmanager
async def redis_call(what: str, action: str, timeout: float) -> AsyncIterator[None]:
    """Bound one Redis operation by ``timeout``; a timeout or a Redis failure becomes ``StateError``.

    The error reads ``<what>: <action> timed out after <timeout>s`` or ``<what>: <action> failed: <why>``.
    """
    try:
        with anyio.fail_after(timeout):
            yield
    except TimeoutError as exc:
        raise StateError(f"{what}: {action} timed out after {timeout:g}s") from exc
    except (RedisError, OSError) as exc:
        raise StateError(f"{what}: {action} failed: {exc}") from exc
