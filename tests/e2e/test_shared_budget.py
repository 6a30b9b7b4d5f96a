"""Several regogate processes share one budget exactly: Redis and a shared SQLite file.

Four real `regogate` processes (each with its own embedded OPA and its own upstream), each driven
by the real SDK client with 50 calls in flight at once, against one limit of 50.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest

from tests.e2e.harness import STANDIN, gated_session, text
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

PROXIES = 4
CALLS_EACH = 50
LIMIT = 50
BUDGET_TIMEOUT = 60  # four proxies and 200 calls; a few seconds here, slack for a loaded CI machine


def budget_policy(tmp_path: Path, limit: int) -> Path:
    policy = tmp_path / "budget.yaml"
    policy.write_text(
        f'version: "1"\ntools:\n  pip-install:\n    rules:\n      - name: shared-budget\n'
        f'        rate_limit: {limit}/day\n        on_deny: "The team budget is spent"\n',
        encoding="utf-8",
    )
    return policy


async def admitted_by_four_proxies(policy: Path, state: str, prefix: str) -> tuple[int, int]:
    """Run four proxies at once, each with CALLS_EACH calls in flight; count allowed and denied."""
    outcomes: list[bool] = []

    async def proxy(n: int) -> None:
        async with gated_session(policy, STANDIN, "--state", state, "--state-prefix", prefix) as session:

            async def one(i: int) -> None:
                result = await session.call_tool("pip-install", {"packages": [f"p{n}-{i}"]})
                if result.is_error:
                    assert text(result) == "[POLICY DENIED] The team budget is spent"
                outcomes.append(not result.is_error)

            async with anyio.create_task_group() as calls:
                for i in range(CALLS_EACH):
                    calls.start_soon(one, i)

    with anyio.fail_after(BUDGET_TIMEOUT):
        async with anyio.create_task_group() as proxies:
            for n in range(PROXIES):
                proxies.start_soon(proxy, n)
    return outcomes.count(True), outcomes.count(False)


async def test_four_proxies_sharing_redis_admit_exactly_the_limit(tmp_path: Path, redis_server: RedisServer) -> None:
    policy = budget_policy(tmp_path, LIMIT)
    admitted, denied = await admitted_by_four_proxies(policy, redis_server.url, f"t-{uuid.uuid4().hex}:")
    assert (admitted, denied) == (LIMIT, PROXIES * CALLS_EACH - LIMIT)


async def test_four_proxies_sharing_a_sqlite_file_admit_exactly_the_limit(tmp_path: Path) -> None:
    policy = budget_policy(tmp_path, LIMIT)
    admitted, denied = await admitted_by_four_proxies(policy, f"sqlite://{tmp_path / 'state.db'}", "team-a:")
    assert (admitted, denied) == (LIMIT, PROXIES * CALLS_EACH - LIMIT)


@pytest.mark.parametrize("store", ["redis", "sqlite"])
async def test_a_rolled_back_call_frees_quota_for_another_proxy(
    tmp_path: Path, redis_server: RedisServer, store: str
) -> None:
    policy = budget_policy(tmp_path, 3)
    state = redis_server.url if store == "redis" else f"sqlite://{tmp_path / 'state.db'}"
    prefix = f"t-{uuid.uuid4().hex}:"
    with anyio.fail_after(BUDGET_TIMEOUT):
        async with gated_session(policy, STANDIN, "--state", state, "--state-prefix", prefix) as first:
            ok = await first.call_tool("pip-install", {"packages": ["a"]})
            failed = await first.call_tool("pip-install", {"packages": ["fail-me"]})  # the server errors: rolled back
            ok2 = await first.call_tool("pip-install", {"packages": ["b"]})
        async with gated_session(policy, STANDIN, "--state", state, "--state-prefix", prefix) as second:
            third = await second.call_tool("pip-install", {"packages": ["c"]})
            fourth = await second.call_tool("pip-install", {"packages": ["d"]})
    assert not ok.is_error and not ok2.is_error
    assert failed.is_error and "[POLICY DENIED]" not in text(failed)
    assert not third.is_error  # the failed call's unit went back to the shared budget
    assert text(fourth) == "[POLICY DENIED] The team budget is spent"


async def test_redis_outage_denies_counted_calls_and_recovers_without_restart(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    policy = tmp_path / "mixed.yaml"
    policy.write_text(
        'version: "1"\ntools:\n  pip-install:\n    rules:\n      - rate_limit: 100/day\n  black:\n    rules: []\n',
        encoding="utf-8",
    )
    prefix = f"t-{uuid.uuid4().hex}:"
    with anyio.fail_after(BUDGET_TIMEOUT):
        async with gated_session(policy, STANDIN, "--state", redis_server.url, "--state-prefix", prefix) as session:
            assert not (await session.call_tool("pip-install", {"packages": ["a"]})).is_error
            with redis_server.outage():
                during = await session.call_tool("pip-install", {"packages": ["b"]})
                uncounted = await session.call_tool("black", {"path": "."})
            after = await session.call_tool("pip-install", {"packages": ["c"]})
    assert text(during) == "[POLICY DENIED] policy check unavailable (state_error)"
    assert not uncounted.is_error  # a call that needs no counter goes on
    assert not after.is_error  # Redis came back; no restart needed
