"""Fault injection against the real embedded OPA: stopped, continued, killed. Calls fail closed, then recover."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession

from tests.conftest import POLICIES
from tests.e2e.harness import STANDIN, children, command_line, gated_session, processes_mentioning, text

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 60
#: OPA restarts after ~0.1 s plus its start-up; a loaded machine may need seconds.
RECOVERY_TIMEOUT = 30.0
POLL = 0.2


def _opa_children(policy: Path) -> list[int]:
    (regogate,) = [p for p in processes_mentioning(str(policy)) if "regogate" in command_line(p)]
    return [p for p in children(regogate) if "opa" in command_line(p).split()[0]]


def _opa_of(policy: Path) -> int:
    (opa,) = _opa_children(policy)
    return opa


async def _until_allowed(session: ClientSession) -> list[str]:
    """Call until a call is allowed again; the denials seen on the way."""
    denials: list[str] = []
    with anyio.fail_after(RECOVERY_TIMEOUT):
        while (result := await session.call_tool("black", {"path": "."})).is_error:
            denials.append(text(result))
            await anyio.sleep(POLL)
    return denials


def _events(path: Path, kind: str) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [event for event in map(json.loads, lines) if event["event"] == kind]


async def test_a_killed_opa_denies_calls_until_it_is_restarted_and_each_restart_is_audited(tmp_path: Path) -> None:
    policy, audit = tmp_path / "marker-opa-killed.yaml", tmp_path / "audit.jsonl"
    shutil.copy(POLICIES / "python.yaml", policy)
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, STANDIN, "--audit-log", str(audit)) as session:
            assert not (await session.call_tool("black", {"path": "."})).is_error
            first = _opa_of(policy)
            os.kill(first, signal.SIGKILL)
            denied = await session.call_tool("black", {"path": "."})
            assert denied.is_error
            assert text(denied) == "[POLICY DENIED] policy check unavailable (opa_unreachable)"
            denials = await _until_allowed(session)
            assert all("opa_unreachable" in d for d in denials)
            second = _opa_of(policy)
            assert second != first
            os.kill(second, signal.SIGKILL)  # a second crash is restarted too
            await _until_allowed(session)
            conda = await session.call_tool("conda", {"command": "remove"})
    assert conda.is_error and "Destructive operation blocked" in text(conda)  # the same policy is back
    restarts = _events(audit, "opa_restart")
    assert [(r["ok"], r["exited_pid"], r["status"]) for r in restarts] == [
        (True, first, -signal.SIGKILL),
        (True, second, -signal.SIGKILL),
    ]


async def test_a_stopped_opa_times_out_closed_and_serves_again_when_continued(tmp_path: Path) -> None:
    policy, audit = tmp_path / "marker-opa-stopped.yaml", tmp_path / "audit.jsonl"
    shutil.copy(POLICIES / "python.yaml", policy)
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, STANDIN, "--opa-timeout", "0.5", "--audit-log", str(audit)) as session:
            await _until_allowed(session)  # on a loaded machine an answer can take longer than 0.5 s
            opa = _opa_of(policy)
            os.kill(opa, signal.SIGSTOP)
            try:
                stalled = await session.call_tool("black", {"path": "."})
                serving = _opa_children(policy)
            finally:
                os.kill(opa, signal.SIGCONT)
            # Should this fail, say what decided the call: which OPAs ran, and the audit's last events.
            seen = f"stopped {opa}, OPAs then {serving}, last events {audit.read_text(encoding='utf-8')[-1500:]}"
            assert stalled.is_error and "(opa_timeout)" in text(stalled), seen
            await _until_allowed(session)
            assert _opa_of(policy) == opa  # a stall is not a death: no restart
