"""Approval stores: one behaviour suite on memory, SQLite and Redis (single use, binding, answers, lapses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import anyio
import pytest

from regogate.core import ConfigError
from regogate.proxy.approval import (
    Approval,
    ApprovalError,
    ApprovalStore,
    arguments_digest,
    arguments_preview,
    new_approval_id,
    open_approval_store,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

NOW = 1_795_000_000.0
ARGS = {"packages": ["numpy"], "channel": "conda-forge"}


@pytest.fixture(params=["memory", "sqlite", "redis-local", "redis-container"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApprovalStore]:
    if request.param.startswith("redis-"):
        redis: RedisServer = request.getfixturevalue(request.param.replace("-", "_"))
        opened = open_approval_store(redis.url, f"{uuid4().hex}:")
    elif request.param == "sqlite":
        opened = open_approval_store(f"sqlite:///{tmp_path}/state.db", "srv")
    else:
        opened = open_approval_store("memory")
    yield opened
    await opened.aclose()


def _asked(arguments: object = ARGS, *, tool: str = "conda", timeout: float = 300, now: float = NOW) -> Approval:
    preview, size = arguments_preview(arguments)
    return Approval(
        id=new_approval_id(),
        server_id="python",
        tool=tool,
        digest=arguments_digest(arguments),
        preview=preview,
        size=size,
        rule="conda-needs-approval",
        message="conda needs a person",
        created=now,
        expires=now + timeout,
        timeout=timeout,
    )


async def test_an_approved_call_is_admitted_once(store: ApprovalStore) -> None:
    asked = await store.request(_asked(), NOW)
    assert await store.consume("python", "conda", asked.digest, NOW + 1) is None  # still pending
    answered = await store.answer(asked.id, approve=True, by="ana", reason="ok", via="cli", now=NOW + 2)
    assert answered.status == "approved" and answered.expires == NOW + 2 + 300
    used = await store.consume("python", "conda", asked.digest, NOW + 3)
    assert used is not None and used.id == asked.id and used.status == "used" and used.decided_by == "ana"
    assert await store.consume("python", "conda", asked.digest, NOW + 4) is None


async def test_an_approval_binds_server_tool_and_arguments(store: ApprovalStore) -> None:
    asked = await store.request(_asked(), NOW)
    await store.answer(asked.id, approve=True, by="ana", reason=None, via="cli", now=NOW)
    changed = arguments_digest({**ARGS, "channel": "evil"})
    assert await store.consume("python", "conda", changed, NOW + 1) is None
    assert await store.consume("python", "poetry", asked.digest, NOW + 1) is None
    assert await store.consume("github", "conda", asked.digest, NOW + 1) is None
    assert await store.consume("python", "conda", asked.digest, NOW + 1) is not None


async def test_asking_again_for_the_same_call_returns_the_live_request(store: ApprovalStore) -> None:
    first = await store.request(_asked(), NOW)
    again = await store.request(_asked(now=NOW + 5), NOW + 5)
    assert again.id == first.id
    other = await store.request(_asked({"packages": ["scipy"]}), NOW + 5)
    assert other.id != first.id
    assert {a.id for a in await store.list()} == {first.id, other.id}


async def test_lapsed_approvals_admit_nothing_and_cannot_be_answered(store: ApprovalStore) -> None:
    asked = await store.request(_asked(timeout=60), NOW)
    with pytest.raises(ApprovalError, match="expired"):
        await store.answer(asked.id, approve=True, by="ana", reason=None, via="cli", now=NOW + 61)
    fresh = await store.request(_asked(timeout=60, now=NOW + 100), NOW + 100)
    assert fresh.id != asked.id
    await store.answer(fresh.id, approve=True, by="ana", reason=None, via="cli", now=NOW + 100)
    assert await store.consume("python", "conda", fresh.digest, NOW + 161) is None


async def test_bad_answers_are_refused_and_change_nothing(store: ApprovalStore) -> None:
    with pytest.raises(ApprovalError, match="no approval"):
        await store.answer("apr-nosuchthing", approve=True, by="ana", reason=None, via="cli", now=NOW)
    asked = await store.request(_asked(), NOW)
    await store.answer(asked.id, approve=False, by="bo", reason="no", via="cli", now=NOW + 1)
    with pytest.raises(ApprovalError, match="denied"):
        await store.answer(asked.id, approve=True, by="ana", reason=None, via="cli", now=NOW + 2)
    kept = await store.get(asked.id)
    assert kept is not None and kept.status == "denied" and kept.decided_by == "bo" and kept.reason == "no"
    assert await store.consume("python", "conda", asked.digest, NOW + 3) is None


async def test_two_racing_identical_calls_share_one_approval_and_one_runs(store: ApprovalStore) -> None:
    asked = await store.request(_asked(), NOW)
    await store.answer(asked.id, approve=True, by="ana", reason=None, via="cli", now=NOW)
    won: list[Approval] = []

    async def take() -> None:
        used = await store.consume("python", "conda", asked.digest, NOW + 1)
        if used is not None:
            won.append(used)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(take)
    assert len(won) == 1


async def test_sqlite_approvals_are_single_use_across_processes(tmp_path: Path) -> None:
    spec = f"sqlite:///{tmp_path}/state.db"
    first = open_approval_store(spec, "srv")
    asked = await first.request(_asked(), NOW)
    await first.answer(asked.id, approve=True, by="ana", reason=None, via="cli", now=NOW)
    second = open_approval_store(spec, "srv")
    assert (await second.consume("python", "conda", asked.digest, NOW + 1)) is not None
    assert (await first.consume("python", "conda", asked.digest, NOW + 1)) is None
    await first.aclose()
    await second.aclose()


def test_previews_are_cut_with_the_full_size_stated() -> None:
    preview, size = arguments_preview({"blob": "x" * 10_000})
    assert size > 10_000 and len(preview.encode()) < 4200 and f"{size} bytes in all" in preview


def test_unknown_store_specs_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown state store"):
        open_approval_store("postgres://db")
