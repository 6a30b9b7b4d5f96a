"""One host: ``regogate run --decision-log`` turns on the embedded OPA's decision log, masked as --log-args says.

The OPA decision log and regogate's audit log join on ``decision_id``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import POLICIES
from tests.deploy.conftest import audit_events
from tests.e2e.harness import STANDIN, gated_session

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 30
ARGUMENTS = {"path": "src/app.py"}


def decision_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("log_args", ["hash", "none", "full"])
async def test_embedded_decision_log_joins_the_audit_log_with_arguments_masked(tmp_path: Path, log_args: str) -> None:
    audit, opa_log = tmp_path / "audit.jsonl", tmp_path / "decisions.jsonl"
    flags = ["--audit-log", str(audit), "--decision-log", str(opa_log), "--log-args", log_args]
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(POLICIES / "python.yaml", STANDIN, *flags) as session:
            allowed = await session.call_tool("black", ARGUMENTS)
            denied = await session.call_tool("conda", {"command": "remove"})
    assert not allowed.is_error and denied.is_error
    events = audit_events(audit)
    decisions = [e for e in events if e["event"] == "decision"]
    logged = {e["decision_id"]: e for e in decision_log(opa_log)}
    assert all(e["path"] == "regogate/gate/decision" for e in logged.values())  # revision reads are dropped
    joined = [logged[d["decision_id"]] for d in decisions]
    assert [j["input"]["tool"]["name"] for j in joined] == ["black", "conda"]
    assert [j["result"]["allow"] for j in joined] == [True, False]
    black, black_audit = joined[0], decisions[0]
    # The embedded OPA names a bundle by its directory; regogate reports the directory's name.
    revisions = {Path(name).name: entry["revision"] for name, entry in black["bundles"].items()}
    assert revisions["python"] == events[0]["revision"]
    assert set(revisions) == {"gate", "python", "mask"}
    assert black_audit["revisions"] == revisions == events[0]["revisions"]
    if log_args == "hash":
        assert "arguments" not in black["input"]["tool"]
        assert black["input"]["tool"]["arguments_hash"] == black_audit["args_hash"]
        assert black_audit["args_hash"].startswith("hmac-sha256:")
        assert black["erased"] == ["/input/tool/arguments"]
    elif log_args == "none":
        assert "arguments" not in black["input"]["tool"]
        assert black["erased"] == ["/input/tool/arguments"]
    else:
        assert black["input"]["tool"]["arguments"] == ARGUMENTS == black_audit["arguments"]
    if log_args != "full":
        assert "src/app.py" not in opa_log.read_text(encoding="utf-8")
