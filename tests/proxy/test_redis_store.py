"""What only the Redis store promises: its key layout, expiry, a budget shared by processes, outages.

The behaviour every store shares runs on Redis in test_ratelimit.py.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import uuid4

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from redis.asyncio import Redis

from regogate.core import ConfigError, StateError
from regogate.proxy.state import RedisStore, Refused, Reservation, Ticket, window_start
from regogate.proxy.state._redis import CALL_TIMEOUT, EXPIRY_MARGIN, bucket_key
from tests.conftest import free_tcp_port
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

#: Calendar-aligned: 2026-11-18T11:06:40Z, 40 s into its minute.
NOW = 1_795_000_000.0
PROCESSES = 4
RESERVES_PER_PROCESS = 50
SHARED_LIMIT = 50
#: Bound on any one wait here; a worker process starts Python and imports regogate within it.
STEP = 15.0
#: Longest line a worker writes (a count or "ok").
MAX_LINE = 64


@pytest.fixture
def prefix() -> str:
    """One Redis serves the whole session, so each test counts under a prefix of its own."""
    return f"{uuid4().hex}:"


@pytest.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore(redis_url, prefix)
    yield opened
    await opened.aclose()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client, to look at what the store wrote."""
    client = Redis.from_url(redis_url, socket_timeout=STEP, decode_responses=True)
    yield client
    await client.aclose()


def _item(key: str = "t/_rate_minute", limit: float | None = 3, cost: float = 1) -> Reservation:
    return Reservation(key=key, limit=limit, window="minute", cost=cost)


async def test_counters_live_under_the_documented_keys(store: RedisStore, raw: Redis, prefix: str) -> None:
    assert isinstance(await store.reserve([_item(cost=2.5)], NOW), Ticket)
    start = window_start("minute", NOW)
    assert bucket_key(prefix, "t/_rate_minute", "minute", start) == f"{prefix}regogate:t/_rate_minute:minute:{start}"
    assert await raw.keys(f"{prefix}*") == [f"{prefix}regogate:t/_rate_minute:minute:{start}"]
    assert await raw.get(f"{prefix}regogate:t/_rate_minute:minute:{start}") == "2.5"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("me", "me:regogate:"), ("team-a:", "team-a:regogate:"), ("", "regogate:")],
)
def test_a_prefix_is_separated_by_one_colon(prefix: str, expected: str) -> None:
    assert bucket_key(prefix, "t/_rate_minute", "minute", 60) == f"{expected}t/_rate_minute:minute:60"


async def test_every_bucket_expires_after_its_window_and_a_margin(store: RedisStore, raw: Redis, prefix: str) -> None:
    items = [_item(), Reservation("t/_rate_hour", 5, "hour", 1), Reservation("spend", None, "day", 1)]
    assert isinstance(await store.reserve(items, NOW), Ticket)
    for window, length in (("minute", 60), ("hour", 3600), ("day", 86400)):
        keys = await raw.keys(f"{prefix}regogate:*:{window}:*")
        assert len(keys) == 1
        ttl = await raw.ttl(keys[0])
        assert 0 < ttl <= length + EXPIRY_MARGIN
    # NOW is 40 s into its minute: 20 s of window are left, then the margin.
    minute_key = bucket_key(prefix, "t/_rate_minute", "minute", window_start("minute", NOW))
    assert 0 < await raw.ttl(minute_key) <= 20 + EXPIRY_MARGIN


async def test_prefixes_keep_budgets_apart(redis_url: str, prefix: str) -> None:
    one, two = RedisStore(redis_url, f"{prefix}one:"), RedisStore(redis_url, f"{prefix}two:")
    try:
        assert isinstance(await one.reserve([_item(limit=1)], NOW), Ticket)
        assert isinstance(await two.reserve([_item(limit=1)], NOW), Ticket)
        assert isinstance(await one.reserve([_item(limit=1)], NOW), Refused)
        assert await two.current("t/_rate_minute", "minute", NOW) == 1.0
    finally:
        await one.aclose()
        await two.aclose()


async def test_ten_costs_of_one_fill_a_limit_of_ten_exactly(store: RedisStore) -> None:
    admitted = [isinstance(await store.reserve([_item(limit=10)], NOW), Ticket) for _ in range(11)]
    assert admitted == [True] * 10 + [False]


async def test_rollback_never_takes_a_counter_below_zero(store: RedisStore, raw: Redis, prefix: str) -> None:
    ticket = await store.reserve([_item(cost=2)], NOW)
    assert isinstance(ticket, Ticket)
    key = bucket_key(prefix, "t/_rate_minute", "minute", window_start("minute", NOW))
    await raw.set(key, "0.5", keepttl=True)  # as if something else had already taken some back
    await store.rollback(ticket)
    assert await store.current("t/_rate_minute", "minute", NOW) == 0.0
    await store.rollback(ticket)  # the bucket is gone (as after expiry): nothing is recreated
    assert await raw.exists(key) == 0


async def test_rollback_keeps_the_expiry(store: RedisStore, raw: Redis, prefix: str) -> None:
    assert isinstance(await store.reserve([_item()], NOW), Ticket)
    ticket = await store.reserve([_item()], NOW)
    assert isinstance(ticket, Ticket)
    await store.rollback(ticket)
    key = bucket_key(prefix, "t/_rate_minute", "minute", window_start("minute", NOW))
    assert await raw.get(key) == "1"
    assert await raw.ttl(key) > 0


async def test_an_outage_is_a_state_error_and_the_same_store_recovers(
    store: RedisStore, redis_server: RedisServer
) -> None:
    ticket = await store.reserve([_item()], NOW)
    assert isinstance(ticket, Ticket)
    where = f"{redis_server.host}:{redis_server.port}"
    with redis_server.outage():
        with anyio.fail_after(STEP):
            with pytest.raises(StateError, match=f"redis {where}: reserve failed"):
                await store.reserve([_item()], NOW)
            with pytest.raises(StateError, match=f"redis {where}: rollback failed"):
                await store.rollback(ticket)
            with pytest.raises(StateError, match=f"redis {where}: read failed"):
                await store.current("t/_rate_minute", "minute", NOW)
            with pytest.raises(StateError, match=f"redis {where}"):
                await store.ping()
    # The restarted server is empty (nothing is persisted), and the same store object works again.
    assert isinstance(await store.reserve([_item()], NOW), Ticket)
    assert await store.current("t/_rate_minute", "minute", NOW) == 1.0


async def test_a_restart_between_calls_goes_unnoticed(store: RedisStore, redis_server: RedisServer) -> None:
    assert isinstance(await store.reserve([_item()], NOW), Ticket)  # leaves a pooled connection
    with redis_server.outage():
        pass
    assert isinstance(await store.reserve([_item()], NOW), Ticket)


async def test_a_server_that_never_answers_is_a_state_error() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts connections; nothing ever replies
        port = silent.getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0")
        try:
            with anyio.fail_after(CALL_TIMEOUT + STEP):
                with pytest.raises(StateError, match=f"127.0.0.1:{port}"):
                    await store.reserve([_item()], NOW)
        finally:
            await store.aclose()


async def test_errors_name_the_server_but_never_the_password() -> None:
    port = free_tcp_port()
    store = RedisStore(f"redis://regogate:hunter2@127.0.0.1:{port}/0")
    try:
        with pytest.raises(StateError, match=f"127.0.0.1:{port}") as caught:
            await store.reserve([_item()], NOW)
        assert "hunter2" not in str(caught.value)
    finally:
        await store.aclose()
    with pytest.raises(ConfigError) as bad:
        RedisStore("redis://regogate:hunter2@cache:6379/zero")
    assert "hunter2" not in str(bad.value)


_WORKER = textwrap.dedent(
    """
    import sys

    import anyio
    from regogate.proxy.state import RedisStore, Reservation, Ticket

    async def main() -> None:
        store = RedisStore(sys.argv[1], sys.argv[2])
        item = Reservation("shared", float(sys.argv[3]), "minute", 1)
        held = []

        async def one() -> None:
            result = await store.reserve([item], {now})
            if isinstance(result, Ticket):
                held.append(result)

        await store.ping()
        print("ready", flush=True)
        for line in sys.stdin:
            command, count = line.split()
            if command == "reserve":
                before = len(held)
                async with anyio.create_task_group() as tg:
                    for _ in range(int(count)):
                        tg.start_soon(one)
                print(len(held) - before, flush=True)
            else:
                for _ in range(int(count)):
                    await store.rollback(held.pop())
                print("ok", flush=True)
        await store.aclose()

    anyio.run(main)
    """
).format(now=NOW)


@dataclass
class Worker:
    """A separate OS process with its own RedisStore, driven one line at a time."""

    process: anyio.abc.Process
    lines: BufferedByteReceiveStream

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(f"{command}\n".encode())

    async def receive(self) -> str:
        with anyio.fail_after(STEP):
            return (await self.lines.receive_until(b"\n", MAX_LINE)).decode()


@asynccontextmanager
async def workers(count: int, url: str, prefix: str, limit: int) -> AsyncIterator[list[Worker]]:
    """Start ``count`` workers and wait until each has connected (the "ready" half of the barrier)."""
    started: list[Worker] = []
    try:
        for _ in range(count):
            process = await anyio.open_process(
                [sys.executable, "-c", _WORKER, url, prefix, str(limit)], stderr=subprocess.STDOUT
            )
            assert process.stdout is not None
            started.append(Worker(process, BufferedByteReceiveStream(process.stdout)))
        for worker in started:
            assert await worker.receive() == "ready"
        yield started
    finally:
        with anyio.move_on_after(STEP, shield=True):
            for worker in started:
                worker.process.kill()
                await worker.process.aclose()


async def test_processes_sharing_redis_admit_exactly_the_limit(redis_url: str, prefix: str) -> None:
    async with workers(PROCESSES, redis_url, prefix, SHARED_LIMIT) as pool:
        for worker in pool:  # "go": every worker fires its reserves at once
            await worker.send(f"reserve {RESERVES_PER_PROCESS}")
        admitted = [int(await worker.receive()) for worker in pool]
    assert sum(admitted) == SHARED_LIMIT


async def test_a_rollback_frees_quota_for_another_process(store: RedisStore, redis_url: str, prefix: str) -> None:
    item = Reservation("shared", 3, "minute", 1)
    async with workers(1, redis_url, prefix, 3) as (other,):
        await other.send("reserve 3")
        assert await other.receive() == "3"
        assert isinstance(await store.reserve([item], NOW), Refused)
        await other.send("rollback 1")
        assert await other.receive() == "ok"
        assert isinstance(await store.reserve([item], NOW), Ticket)
    assert await store.current("shared", "minute", NOW) == 3.0
