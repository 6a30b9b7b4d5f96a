"""Out-of-band approval as a person does it: the agent's call is denied with an approval id, someone runs
`regogate approvals approve ID` in another terminal, and the same call then runs once on the real server."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from mcp import StdioServerParameters, types
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.stdio import stdio_client

from tests.conftest import POLICIES, find_opa_binary
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


async def _session_answering(
    policy: Path,
    tmp_path: Path,
    answer: Callable[[types.ElicitRequestParams], Awaitable[types.ElicitResult | types.ErrorData]],
    calls: list[tuple[str, dict[str, object]]],
) -> list[types.CallToolResult]:
    """Run ``calls`` through regogate with a client whose user answers approval forms with ``answer``."""
    environment = {**os.environ, "REGOGATE_OPA": find_opa_binary()}
    flags = ["-c", str(policy), "--state", f"sqlite:///{tmp_path}/state.db", "--", *STANDIN]
    params = StdioServerParameters(command=REGOGATE, args=flags, env=environment)

    async def callback(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return await answer(params)

    results = []
    with anyio.fail_after(SESSION_TIMEOUT):
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write, elicitation_callback=callback) as session,
        ):
            await session.initialize()
            for tool, arguments in calls:
                results.append(await session.call_tool(tool, arguments))
    return results


async def test_the_clients_user_approves_declines_or_says_no_in_a_form(tmp_path: Path) -> None:
    forms: list[types.ElicitRequestParams] = []

    async def person(params: types.ElicitRequestParams) -> types.ElicitResult:
        forms.append(params)
        if "'poetry'" in params.message:
            return types.ElicitResult(action="decline")
        approve = "numpy" in params.message
        return types.ElicitResult(action="accept", content={"approve": approve, "reason": "e2e"})

    yes, declined, no = await _session_answering(
        POLICIES / "python-approval.yaml",
        tmp_path,
        person,
        [("conda", {"command": "remove numpy"}), ("poetry", {"command": "remove x"}), ("conda", {"command": "rm y"})],
    )
    assert not yes.is_error and text(yes) == "(stand-in) would run: conda remove numpy"
    assert declined.is_error and "The user declined; the call was not run." in text(declined)
    assert no.is_error and "The user said no" in text(no)
    assert len(forms) == 3 and all(isinstance(f, types.ElicitRequestFormParams) for f in forms)
    first = forms[0]
    assert isinstance(first, types.ElicitRequestFormParams)
    assert "conda-needs-approval" in first.message and '"remove numpy"' in first.message
    assert first.requested_schema["required"] == ["approve"]


async def test_no_answer_within_the_approval_timeout_denies(tmp_path: Path) -> None:
    policy = tmp_path / "python.yaml"
    text_ = (POLICIES / "python-approval.yaml").read_text(encoding="utf-8")
    policy.write_text(text_.replace("approval_timeout: 5m", "approval_timeout: 1s"), encoding="utf-8")

    async def asleep(params: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.sleep(4)
        return types.ElicitResult(action="accept", content={"approve": True})

    (late,) = await _session_answering(policy, tmp_path, asleep, [("conda", {"command": "remove numpy"})])
    assert late.is_error and "did not answer in time" in text(late)
