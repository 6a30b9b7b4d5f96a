"""A real gated MCP session through an *installed* regogate (``make wheel-check``).

The official SDK client (from the dev virtualenv) spawns ``REGOGATE -c policy.yaml -- mcp-server-time``
where REGOGATE is the console script of the wheel installed into a fresh virtualenv. One call is
allowed and reaches the server, one is denied by the policy; the audit log, on by default under a
private ``XDG_STATE_HOME``, records both. Exits 1 with the reason on any mismatch.

Usage: python scripts/wheel_session.py REGOGATE TIME_SERVER
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import anyio
from mcp import StdioServerParameters
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

POLICY = """\
version: "1"
description: the wheel check's policy for mcp-server-time
tools:
  get_current_time:
    rules: []
  convert_time:
    rules:
      - name: no-conversions
        action: deny
        on_deny: "Conversions are blocked by the wheel check"
"""
#: A cold start (OPA compiling, the server importing) takes a few seconds on a busy 2-core machine.
SESSION_TIMEOUT = 60.0


def _text(result: object) -> str:
    content = getattr(result, "content", [])
    return str(getattr(content[0], "text", "")) if content else ""


async def session(regogate: str, server: str, workdir: Path) -> list[str]:
    """Run the session; return what went wrong (nothing when all is well)."""
    policy = workdir / "time.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    state = workdir / "state"
    # Only what a user's client would pass: no PYTHONPATH, no checkout, a private state directory.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "XDG_STATE_HOME": str(state),
        "REGOGATE_OPA": os.environ["REGOGATE_OPA"],
    }
    params = StdioServerParameters(command=regogate, args=["-c", str(policy), "--", server], env=env, cwd=workdir)
    problems: list[str] = []
    with anyio.fail_after(SESSION_TIMEOUT):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            listed = sorted(tool.name for tool in (await client.list_tools()).tools)
            if listed != ["convert_time", "get_current_time"]:
                problems.append(f"tools/list through the gate: {listed}")
            allowed = await client.call_tool("get_current_time", {"timezone": "UTC"})
            if allowed.is_error or '"timezone"' not in _text(allowed):
                problems.append(f"allowed call did not reach the server: {_text(allowed)!r}")
            denied = await client.call_tool(
                "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
            )
            if not denied.is_error or "Conversions are blocked" not in _text(denied):
                problems.append(f"denied call was not denied by the policy: {_text(denied)!r}")
    audits = list(state.rglob("*.jsonl"))
    events = [json.loads(line) for path in audits for line in path.read_text(encoding="utf-8").splitlines()]
    verdicts = sorted((e["tool"], e["allow"]) for e in events if e.get("event") == "decision")
    if verdicts != [("convert_time", False), ("get_current_time", True)]:
        problems.append(f"audit log under $XDG_STATE_HOME ({[str(p) for p in audits]}) records {verdicts}")
    return problems


def main() -> int:
    regogate, server = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="regogate-wheel-") as tmp:
        problems = anyio.run(session, regogate, server, Path(tmp))
    for problem in problems:
        sys.stderr.write(f"wheel session: {problem}\n")
    if problems:
        return 1
    sys.stdout.write("wheel session: allowed call reached mcp-server-time, denied call was refused, both audited\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
