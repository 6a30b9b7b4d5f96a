"""The one-host commands of docs/deployment.md, run as written (the server swapped for the stand-in)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import anyio
import pytest

from tests.conftest import POLICIES, ROOT
from tests.e2e.harness import STANDIN, gated_session

pytestmark = pytest.mark.anyio

DOC = ROOT / "docs" / "deployment.md"
SESSION_TIMEOUT = 30


def _block(containing: str) -> str:
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    (block,) = [str(b) for b in blocks if containing in b]
    return block


async def test_the_audit_and_decision_log_join_commands_run_as_written(tmp_path: Path) -> None:
    start = _block("regogate -c policies/python.yaml")
    flags = re.search(r"(--decision-log \S+ --log-args hash)", start.replace("\\\n", " "))
    assert flags is not None
    decision_log = flags.group(1).split()[1].replace("~", str(tmp_path))
    home = {"HOME": str(tmp_path), "XDG_STATE_HOME": ""}
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(
            POLICIES / "python.yaml", STANDIN, "--decision-log", decision_log, "--log-args", "hash", env=home
        ) as session:
            await session.call_tool("black", {"path": "."})
            await session.call_tool("conda", {"command": "remove"})
    join = _block("jq -c")
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", join],
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    audit, opa = lines[:2], lines[2:]
    assert [(a["tool"], a["allow"]) for a in audit] == [("black", True), ("conda", False)]
    # The OPA log also holds the start-up probe; the join is a lookup on decision_id.
    by_id = {o["decision_id"]: o for o in opa}
    joined = [by_id[a["decision_id"]] for a in audit]
    assert [o["allow"] for o in joined] == [True, False]
    assert all(set(o["revisions"]) and all(isinstance(r, str) for r in o["revisions"].values()) for o in joined)
