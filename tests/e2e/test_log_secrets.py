"""Secrets in every log mode: nothing of a call's arguments reaches any log unless `--log-args full`.

One session per mode through the real CLI, with the audit log, OPA's decision log and regogate's
stderr (at debug level) all captured. The calls carry a secret value, an `increment_from` amount, and
an argument that fails schema validation (whose message names it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
from pathlib import Path

import anyio
import pytest
from mcp import StdioServerParameters
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from tests.conftest import find_opa_binary
from tests.e2e.harness import REGOGATE, STANDIN

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 60
SECRET = "pkg-s3cret-0xC0FFEE"
AMOUNT = 48213
#: The amount as a number of its own: not the digits inside a timestamp's nanoseconds or a hex hash.
AMOUNT_ALONE = re.compile(rf"(?<![0-9A-Za-z.]){AMOUNT}(?![0-9A-Za-z])")
POLICY = """\
version: "1"
tools:
  pip-install:
    rules:
      - name: spend
        conditions:
          - path: state.pip-install.spend
            op: lte
            value: 1000000
        state:
          counter: spend
          window: day
          increment_from: args.amount
  uv-run:
    rules:
      - name: typed
        validate:
          schema: true
"""


async def _session(tmp_path: Path, log_args: str) -> tuple[str, str, str, Path]:
    policy, audit, decisions, stderr = (tmp_path / n for n in ("spend.yaml", "audit.jsonl", "opa.jsonl", "err.txt"))
    policy.write_text(POLICY, encoding="utf-8")
    args = ["-c", str(policy), "--audit-log", str(audit), "--decision-log", str(decisions), "--log-args", log_args]
    args += ["--log-level", "debug", "--", *STANDIN]
    env = {**os.environ, "REGOGATE_OPA": find_opa_binary(), "XDG_STATE_HOME": str(tmp_path / "state")}
    params = StdioServerParameters(command=REGOGATE, args=args, env=env)
    with open(stderr, "w", encoding="utf-8") as errlog, anyio.fail_after(SESSION_TIMEOUT):
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            spent = await session.call_tool("pip-install", {"packages": [SECRET], "amount": AMOUNT})
            typed = await session.call_tool("uv-run", {"command": [SECRET]})
    assert not spent.is_error
    assert typed.is_error and "command" in str(typed.content[0])  # the client still learns why
    texts = [p.read_text(encoding="utf-8") for p in (audit, decisions, stderr)]
    return texts[0], texts[1], texts[2], tmp_path / "state" / "regogate" / "args-hash.key"


@pytest.mark.parametrize("log_args", ["hash", "none", "full"])
async def test_nothing_of_the_arguments_reaches_any_log_unless_full(tmp_path: Path, log_args: str) -> None:
    audit, decisions, stderr, key_path = await _session(tmp_path, log_args)
    logs = {"audit": audit, "decision log": decisions, "stderr": stderr}
    audit_events = [json.loads(line) for line in audit.splitlines()]
    opa_events = {e["decision_id"]: e for e in map(json.loads, decisions.splitlines())}
    calls = [e for e in audit_events if e["event"] == "decision"]
    assert [c["tool"] for c in calls] == ["pip-install", "uv-run"]
    if log_args == "full":
        for name, text in logs.items():
            if name != "stderr":
                assert SECRET in text and AMOUNT_ALONE.search(text), name
        return
    for name, text in logs.items():
        assert SECRET not in text, f"the secret value is in the {name}"
        assert not AMOUNT_ALONE.search(text), f"the increment_from amount is in the {name}"
    schema_denial = calls[1]
    assert schema_denial["message"].startswith("(withheld")
    assert opa_events[schema_denial["decision_id"]]["result"]["reasons"][0]["message"].startswith("(withheld")
    if log_args == "none":
        assert all("args_hash" not in c for c in calls)
        assert all("arguments_hash" not in opa_events[c["decision_id"]]["input"]["tool"] for c in calls)
        return
    # hash: a keyed hash under a private per-installation key, the same in both logs.
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = bytes.fromhex(key_path.read_text(encoding="ascii").strip())
    arguments = {"amount": AMOUNT, "packages": [SECRET]}
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":")).encode()
    expected = "hmac-sha256:" + hmac.new(key, canonical, hashlib.sha256).hexdigest()
    assert calls[0]["args_hash"] == expected
    assert opa_events[calls[0]["decision_id"]]["input"]["tool"]["arguments_hash"] == expected
    assert "sha256:" + hashlib.sha256(canonical).hexdigest() not in audit + decisions  # not the guessable one
