"""Rate-limit stores: one behaviour suite for every store (memory, SQLite, Redis), then what only SQLite promises.

What only Redis promises is in test_redis_store.py.
"""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import anyio
import pytest

from regogate.core import ConfigError, StateError
from regogate.proxy.state import (
    MemoryStore,
    RateLimitStore,
    RedisStore,
    Refused,
    Reservation,
    SqliteStore,
    Ticket,
    default_state_spec,
    open_store,
    window_start,
)
from tests.proxy.opa_fixtures import FakeClock

pytestmark = pytest.mark.anyio

#: Calendar-aligned: 2026-11-18T11:06:40Z, 40 s into its minute.
NOW = 1_795_000_000.0
PROCESSES = 4
RESERVES_PER_PROCESS = 50
SHARED_LIMIT = 50
#: Bound for the multi-process run (each process starts Python and imports regogate).
PROCESS_TIMEOUT = 30


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-container"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RateLimitStore]:
    if request.param.startswith("redis"):
        # One Redis serves the whole session, so each test counts under a prefix of its own.
        server = request.getfixturevalue("redis_container" if request.param == "redis-container" else "redis_local")
        opened = open_store(server.url, f"{uuid4().hex}:")
    else:
        opened = open_store("memory" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db", "srv")
    yield opened
    await opened.aclose()


def _one(key: str = "t/_rate_minute", limit: float | None = 3, cost: float = 1) -> Reservation:
    return Reservation(key=key, limit=limit, window="minute", cost=cost)


async def test_a_limit_of_n_admits_n_then_refuses(store: RateLimitStore) -> None:
    for _ in range(3):
        assert isinstance(await store.reserve([_one()], NOW), Ticket)
    refused = await store.reserve([_one()], NOW)
    assert refused == Refused(index=0, reservation=_one(), current=3.0)
    assert await store.current("t/_rate_minute", "minute", NOW) == 3.0


async def test_reservations_are_all_or_nothing(store: RateLimitStore) -> None:
    roomy, tight = _one("a", limit=10), _one("b", limit=1)
    assert isinstance(await store.reserve([tight], NOW), Ticket)
    refused = await store.reserve([roomy, tight], NOW)
    assert isinstance(refused, Refused)
    assert refused.index == 1
    assert await store.current("a", "minute", NOW) == 0.0
    assert await store.current("b", "minute", NOW) == 1.0


async def test_declarations_of_one_call_see_each_other(store: RateLimitStore) -> None:
    refused = await store.reserve([_one("a", limit=1), _one("a", limit=1)], NOW)
    assert isinstance(refused, Refused)
    assert refused.index == 1
    assert await store.current("a", "minute", NOW) == 0.0


async def test_rollback_frees_the_quota(store: RateLimitStore) -> None:
    ticket = await store.reserve([_one(limit=1), _one("g/_rate_hour", limit=5)], NOW)
    assert isinstance(ticket, Ticket)
    assert isinstance(await store.reserve([_one(limit=1)], NOW), Refused)
    await store.rollback(ticket)
    assert await store.current("g/_rate_hour", "minute", NOW) == 0.0
    assert isinstance(await store.reserve([_one(limit=1)], NOW), Ticket)


async def test_commit_keeps_the_count(store: RateLimitStore) -> None:
    ticket = await store.reserve([_one(limit=1)], NOW)
    assert isinstance(ticket, Ticket)
    await store.commit(ticket)
    assert await store.current("t/_rate_minute", "minute", NOW) == 1.0


async def test_windows_roll_over_on_calendar_boundaries(store: RateLimitStore) -> None:
    clock = FakeClock(NOW)
    hourly = Reservation("t/_rate_hour", 1, "hour", 1)
    assert isinstance(await store.reserve([_one(limit=1), hourly], clock.now()), Ticket)
    clock.advance(19.9)  # still the same minute
    assert isinstance(await store.reserve([_one(limit=1)], clock.now()), Refused)
    clock.advance(0.1)  # the next minute starts
    assert isinstance(await store.reserve([_one(limit=1)], clock.now()), Ticket)
    assert isinstance(await store.reserve([hourly], clock.now()), Refused)
    clock.value = window_start("hour", NOW) + 3600
    assert isinstance(await store.reserve([hourly], clock.now()), Ticket)


async def test_rollback_after_the_window_rolled_undoes_the_old_bucket(store: RateLimitStore) -> None:
    first = await store.reserve([_one(limit=2)], NOW)
    assert isinstance(first, Ticket)
    later = NOW + 30
    assert isinstance(await store.reserve([_one(limit=2)], later), Ticket)
    await store.rollback(first)
    assert await store.current("t/_rate_minute", "minute", later) == 1.0
    assert await store.current("t/_rate_minute", "minute", NOW) == 0.0


async def test_concurrent_reserves_admit_exactly_the_limit(store: RateLimitStore) -> None:
    admitted: list[Ticket] = []

    async def one() -> None:
        result = await store.reserve([_one(limit=50)], NOW)
        if isinstance(result, Ticket):
            admitted.append(result)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(120):
                tg.start_soon(one)
    assert len(admitted) == 50


async def test_cost_may_be_fractional(store: RateLimitStore) -> None:
    spend = Reservation("charge/daily_spend", 10, "day", 3.5)
    assert isinstance(await store.reserve([spend], NOW), Ticket)
    assert isinstance(await store.reserve([spend], NOW), Ticket)
    refused = await store.reserve([spend], NOW)
    assert isinstance(refused, Refused)
    assert refused.current == 7.0


async def test_tenths_add_up_to_the_limit(store: RateLimitStore) -> None:
    tenth = Reservation("charge/daily_spend", 1, "day", 0.1)
    admitted = [isinstance(await store.reserve([tenth], NOW), Ticket) for _ in range(11)]
    assert admitted == [True] * 10 + [False]
    assert await store.current("charge/daily_spend", "day", NOW) == pytest.approx(1.0)


async def test_an_exclusive_limit_keeps_the_counter_below_it(store: RateLimitStore) -> None:
    # lt 10 with amounts of 4: 4 and 8 pass, 12 would not; then 1 brings it to 9, and 1 more would reach 10.
    def spend(cost: float) -> Reservation:
        return Reservation("charge/spend", 10, "day", cost, exclusive=True)

    outcomes = [isinstance(await store.reserve([spend(c)], NOW), Ticket) for c in (4, 4, 4, 1, 1)]
    assert outcomes == [True, True, False, True, False]
    assert await store.current("charge/spend", "day", NOW) == 9.0


async def test_a_zero_cost_is_admitted_even_at_the_limit(store: RateLimitStore) -> None:
    assert isinstance(await store.reserve([_one(limit=1)], NOW), Ticket)
    assert isinstance(await store.reserve([_one(limit=1, cost=0)], NOW), Ticket)
    assert isinstance(await store.reserve([_one(limit=1)], NOW), Refused)


async def test_count_only_declarations_never_refuse(store: RateLimitStore) -> None:
    for _ in range(5):
        assert isinstance(await store.reserve([_one(limit=None, cost=100)], NOW), Ticket)
    assert await store.current("t/_rate_minute", "minute", NOW) == 500.0


async def test_counters_under_a_prefix_are_listed_each_with_its_value(store: RateLimitStore) -> None:
    per_caller = "t/_rate_minute/principal/"
    for who, times in (("alice", 2), ("b*b?[x]\\", 1), ("carol:minute:1", 3)):  # glob and separator characters
        for _ in range(times):
            assert isinstance(await store.reserve([_one(per_caller + who, limit=None)], NOW), Ticket)
    assert isinstance(await store.reserve([_one("t/_rate_minute", limit=None)], NOW), Ticket)
    assert isinstance(await store.reserve([_one(per_caller + "dave", limit=None)], NOW - 60), Ticket)  # last window
    assert await store.current_under(per_caller, "minute", NOW) == {
        per_caller + "alice": 2.0,
        per_caller + "b*b?[x]\\": 1.0,
        per_caller + "carol:minute:1": 3.0,
    }
    assert await store.current_under("t/_rate_minute/principal/b*", "minute", NOW) == {per_caller + "b*b?[x]\\": 1.0}
    assert await store.current_under(per_caller, "hour", NOW) == {}


def test_window_start_is_utc_calendar_aligned() -> None:
    assert window_start("minute", NOW) == 1_795_000_000 - 40
    assert window_start("hour", NOW) == 1_795_000_000 - 6 * 60 - 40
    assert window_start("day", NOW) == 1_795_000_000 - (11 * 3600 + 6 * 60 + 40)


async def test_open_store_reads_its_spec(tmp_path: Path) -> None:
    assert isinstance(open_store("memory", "p"), MemoryStore)
    assert isinstance(open_store(f"sqlite:///{tmp_path}/a.db", "p"), SqliteStore)
    assert isinstance(open_store(f"{tmp_path}/b.sqlite", "p"), SqliteStore)
    for url in ("redis://localhost", "redis://u:pw@cache.internal:6380/2", "rediss://[::1]:6379/0?ssl_cert_reqs=none"):
        redis_store = open_store(url, "p")
        assert isinstance(redis_store, RedisStore)
        await redis_store.aclose()  # nothing connected yet; this only drops the pool
    bad_specs = (
        "state.txt",
        "sqlite://",
        "redis://",
        "redis://cache:port/0",
        "redis://cache:6379/zero",
        "redis://cache:6379/0?socket_timeout=60",
        "unix:///run/redis.sock",
    )
    for bad in bad_specs:
        with pytest.raises(ConfigError):
            open_store(bad, "p")


async def test_sqlite_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteStore(path, "srv")
    assert isinstance(await first.reserve([_one(cost=2)], NOW), Ticket)
    await first.aclose()
    again = SqliteStore(path, "srv")
    assert await again.current("t/_rate_minute", "minute", NOW) == 2.0
    await again.aclose()


async def test_sqlite_prefixes_keep_servers_apart(tmp_path: Path) -> None:
    one, two = SqliteStore(tmp_path / "s.db", "one"), SqliteStore(tmp_path / "s.db", "two")
    assert isinstance(await one.reserve([_one(limit=1)], NOW), Ticket)
    assert isinstance(await two.reserve([_one(limit=1)], NOW), Ticket)
    await one.aclose()
    await two.aclose()


async def test_sqlite_prunes_buckets_whose_window_ended(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path, "srv")
    await store.reserve([_one()], NOW)
    await store.reserve([_one()], NOW + 3600)
    await store.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM regogate_counters").fetchone() == (1,)


async def test_sqlite_failures_are_state_errors(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot open"):
        SqliteStore(tmp_path / "missing" / "state.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match=r"garbage\.db"):
        SqliteStore(garbage)
    store = SqliteStore(tmp_path / "ok.db")
    await store.aclose()
    with pytest.raises(StateError, match="reserve failed"):
        await store.reserve([_one()], NOW)


_WORKER = textwrap.dedent(
    """
    import sys
    import anyio
    from regogate.proxy.state import Reservation, SqliteStore, Ticket

    async def main() -> None:
        store = SqliteStore(sys.argv[1], "srv")
        item = Reservation("t/_rate_minute", {limit}, "minute", 1)
        print("ready", flush=True)
        sys.stdin.readline()
        admitted = 0
        for _ in range({count}):
            admitted += isinstance(await store.reserve([item], {now}), Ticket)
        await store.aclose()
        print(admitted, flush=True)

    anyio.run(main)
    """
).format(limit=SHARED_LIMIT, count=RESERVES_PER_PROCESS, now=NOW)


def test_sqlite_shared_by_processes_never_admits_more_than_the_limit(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    anyio.run(SqliteStore(path).aclose)  # create the schema once, so the workers race on counting only
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        for _ in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        admitted = [int(worker.communicate(timeout=PROCESS_TIMEOUT)[0]) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert sum(admitted) == SHARED_LIMIT


async def test_sqlite_waiting_for_a_lock_leaves_the_event_loop_running(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = SqliteStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0
    outcome: list[object] = []

    async def reserve() -> None:
        outcome.append(await store.reserve([_one()], NOW))

    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reserve)
                while ticks < 20:  # the loop keeps turning while the reservation waits
                    await anyio.sleep(0.01)
                    ticks += 1
                assert outcome == []
                other.execute("COMMIT")
    finally:
        other.close()
        await store.aclose()
    assert isinstance(outcome[0], Ticket)


async def test_default_store_is_a_private_file_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    spec = default_state_spec()
    assert spec == f"sqlite://{tmp_path / 'xdg' / 'regogate' / 'state.db'}"
    store = open_store(spec)
    await store.aclose()
    assert stat.S_IMODE((tmp_path / "xdg" / "regogate").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "xdg" / "regogate" / "state.db").stat().st_mode) == 0o600
