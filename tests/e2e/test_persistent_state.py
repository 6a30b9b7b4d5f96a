"""Counters outlive a session: the default store is a private SQLite file in the user's state directory.

Real `regogate` processes between the SDK client and a server, with no `--state` flag, and a test
clock (REGOGATE_TEST_CLOCK, test-only) moved across calendar-aligned UTC window boundaries.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import ROOT
from tests.e2e.harness import SERVERS, STANDIN, gated_session, text

pytestmark = pytest.mark.anyio

SEED = ROOT / "tests" / "converters" / "seed" / "python-mcp-server-policy.yaml"
#: Two sessions of 31 calls, or one session stepping through three windows; slack for a loaded machine.
SESSION_TIMEOUT = 60


def at(moment: str) -> str:
    """Unix seconds of an ISO UTC time, as the test clock file holds them."""
    return str(datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp())


def clock_env(tmp_path: Path, moment: str) -> tuple[Path, dict[str, str]]:
    clock = tmp_path / "clock"
    clock.write_text(at(moment), encoding="utf-8")
    return clock, {"REGOGATE_TEST_CLOCK": str(clock)}


async def test_two_sessions_of_the_seed_policy_share_their_counters(tmp_path: Path) -> None:
    _, env = clock_env(tmp_path, "2026-11-26T10:15:00")
    audit = tmp_path / "audit.jsonl"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(SEED, STANDIN, "--audit-log", str(audit), env=env) as session:
            for i in range(30):
                result = await session.call_tool("pip-install", {"packages": [f"p{i}"]})
                assert not result.is_error, text(result)
        async with gated_session(SEED, STANDIN, env=env) as session:
            result = await session.call_tool("pip-install", {"packages": ["one-too-many"]})
    assert result.is_error
    assert text(result) == "[POLICY DENIED] Rate limit of 30 per hour reached. Try again later."
    state_dir = Path(os.environ["XDG_STATE_HOME"]) / "regogate"  # the autouse fixture's private directory
    database = state_dir / "state.db"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    start = next(e for e in map(json.loads, audit.read_text(encoding="utf-8").splitlines()) if e["event"] == "start")
    assert start["state"] == f"sqlite://{database}"


WINDOWS_POLICY = """\
version: "1"
tools:
  per_minute: {rules: [{name: m, rate_limit: 2/minute}]}
  per_hour: {rules: [{name: h, rate_limit: 2/hour}]}
  per_day: {rules: [{name: d, rate_limit: 2/day}]}
"""


async def test_windows_reset_on_the_utc_minute_hour_and_midnight(tmp_path: Path) -> None:
    policy = tmp_path / "windows.yaml"
    policy.write_text(WINDOWS_POLICY, encoding="utf-8")
    clock, env = clock_env(tmp_path, "2026-11-26T23:59:58")
    server = [sys.executable, str(SERVERS / "any_args_server.py"), "per_minute", "per_hour", "per_day"]
    seen: list[tuple[str, str, bool]] = []

    async def calls(session: Any, moment: str, *tools: str) -> None:
        clock.write_text(at(moment), encoding="utf-8")
        for tool in tools:
            result = await session.call_tool(tool, {})
            seen.append((moment[11:], tool, not result.is_error))

    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, server, env=env) as session:
            await calls(session, "2026-11-26T23:59:58", "per_minute", "per_hour", "per_day")
            await calls(session, "2026-11-26T23:59:59", "per_minute", "per_hour", "per_day")
            await calls(session, "2026-11-26T23:59:59", "per_minute", "per_hour", "per_day")
            # Two seconds later is a new minute, hour and day: every counter starts afresh.
            await calls(session, "2026-11-27T00:00:00", "per_minute", "per_hour", "per_day")
            await calls(session, "2026-11-27T00:00:59", "per_minute", "per_minute")
            await calls(session, "2026-11-27T00:01:00", "per_minute")
            await calls(session, "2026-11-27T00:59:59", "per_hour", "per_hour")
            await calls(session, "2026-11-27T01:00:00", "per_hour", "per_day", "per_day")
    assert seen == [
        ("23:59:58", "per_minute", True),
        ("23:59:58", "per_hour", True),
        ("23:59:58", "per_day", True),
        ("23:59:59", "per_minute", True),
        ("23:59:59", "per_hour", True),
        ("23:59:59", "per_day", True),
        ("23:59:59", "per_minute", False),
        ("23:59:59", "per_hour", False),
        ("23:59:59", "per_day", False),
        ("00:00:00", "per_minute", True),
        ("00:00:00", "per_hour", True),
        ("00:00:00", "per_day", True),
        ("00:00:59", "per_minute", True),
        ("00:00:59", "per_minute", False),
        ("00:01:00", "per_minute", True),
        ("00:59:59", "per_hour", True),
        ("00:59:59", "per_hour", False),
        ("01:00:00", "per_hour", True),
        ("01:00:00", "per_day", True),
        ("01:00:00", "per_day", False),
    ]
