"""Out-of-band approval as a person does it: the agent's call is denied with an approval id, someone runs
`regogate approvals approve ID` in another terminal, and the same call then runs once on the real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.conftest import POLICIES
from tests.e2e.harness import REGOGATE, STANDIN, gated_session, text

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 60


def approve(approval_id: str, state: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REGOGATE, "approvals", "approve", approval_id, "--state", state, "--by", "ana"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_a_cli_approval_lets_the_same_call_run_once_through_the_real_server(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path}/state.db"
    audit = tmp_path / "audit.jsonl"
    policy = POLICIES / "python-approval.yaml"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, STANDIN, "--state", state, "--audit-log", str(audit)) as session:
            asked = await session.call_tool("conda", {"command": "remove numpy"})
            assert asked.is_error
            message = text(asked)
            assert "a person must approve it" in message and f"--state {state}" in message
            approval_id = message.split("Approval ", 1)[1].split(" ", 1)[0]
            done = await anyio.to_thread.run_sync(approve, approval_id, state)
            assert done.returncode == 0, done.stderr
            ran = await session.call_tool("conda", {"command": "remove numpy"})
            again = await session.call_tool("conda", {"command": "remove numpy"})
    assert not ran.is_error and text(ran) == "(stand-in) would run: conda remove numpy"
    assert again.is_error and approval_id not in text(again)
    events = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    joined = [e for e in events if e.get("approval_id") == approval_id]
    assert [(e["event"], e.get("outcome"), e.get("allow")) for e in joined] == [
        ("approval", "requested", None),
        ("decision", None, False),
        ("approval", "used", None),
        ("decision", None, True),
    ]
