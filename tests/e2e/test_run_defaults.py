"""``regogate run`` out of the box: audit on by default, start-up probe, the gate for Rego dirs, --bundle."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import PaginatedRequestParams

from tests.conftest import POLICIES
from tests.e2e.harness import EVERYTHING_SERVER, PAGED_SERVER, REGOGATE, STANDIN, gated_session, text

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 30


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_the_audit_log_is_on_by_default_in_the_state_directory(private_state_home: Path) -> None:
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(POLICIES / "python.yaml", STANDIN) as session:
            await session.call_tool("conda", {"command": "list"})
    audit = private_state_home / "regogate" / "python" / "audit.jsonl"
    events = _events(audit)
    assert events[0]["event"] == "start" and events[-1]["event"] == "shutdown"
    assert [(e["tool"], e["allow"]) for e in events if e["event"] == "decision"] == [("conda", False)]
    assert events[0]["audit_log"] == str(audit)


async def test_audit_log_none_turns_it_off(private_state_home: Path) -> None:
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(POLICIES / "python.yaml", STANDIN, "--audit-log", "none") as session:
            await session.call_tool("black", {"path": "."})
    assert not list(private_state_home.rglob("*.jsonl"))


def test_the_audit_path_is_printed_at_start_and_credentials_stay_out_of_it(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            REGOGATE,
            "-c",
            str(POLICIES / "python.yaml"),
            "--state-dir",
            str(tmp_path / "st"),
            "--state",
            "redis://user:hunter2@127.0.0.1:1/0",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    audit = tmp_path / "st" / "python" / "audit.jsonl"
    assert f"regogate: audit log {audit}" in out.stderr
    start = _events(audit)[0]
    assert start["state"] == "redis://127.0.0.1:1/0"
    assert "hunter2" not in audit.read_text(encoding="utf-8")


def test_a_decision_path_that_answers_nothing_refuses_to_start(tmp_path: Path) -> None:
    # The server starts while OPA does, but it gets nothing before OPA has answered the probe:
    # here it records what reached its stdin, then its stdin closes and it exits.
    received = tmp_path / "received"
    client = subprocess.Popen(
        [
            REGOGATE,
            "-c",
            str(POLICIES / "python.yaml"),
            "--opa-path",
            "regogate/gate/decisoin",
            "--",
            "sh",
            "-c",
            f"cat > {received}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    call = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}\n'
    out, err = client.communicate(call, timeout=60)
    assert client.returncode == 1
    assert "data.regogate.gate.decisoin is undefined for a probe tools/call" in err.decode()
    assert out == b""
    assert not received.exists() or received.read_bytes() == b""  # nothing reached the server


def test_a_rego_directory_for_another_server_id_refuses_to_start(tmp_path: Path) -> None:
    rego = tmp_path / "acme"
    (rego / "regogate" / "policies" / "acme").mkdir(parents=True)
    (rego / "regogate" / "policies" / "acme" / "policy.rego").write_text(
        "package regogate.policies.acme\n\nhides_all := false\n", encoding="utf-8"
    )
    out = subprocess.run(
        [REGOGATE, "-c", str(rego), "--server-id", "acme-typo", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1
    assert 'regogate.no_policy: no policy is loaded for server id "acme-typo"' in out.stderr


async def test_a_rego_directory_gets_the_gate_and_extension_bundles_add_reasons(tmp_path: Path) -> None:
    rego = tmp_path / "acme"
    (rego / "regogate" / "policies" / "acme").mkdir(parents=True)
    (rego / "regogate" / "policies" / "acme" / "policy.rego").write_text(
        "package regogate.policies.acme\n\nhides_all := false\n\n"
        'deny contains {"rule": "no-env", "message": "no env"} if input.tool.name == "get-env"\n',
        encoding="utf-8",
    )
    (rego / ".manifest").write_text('{"roots": ["regogate/policies/acme"]}', encoding="utf-8")
    extension = tmp_path / "ext"
    (extension / "regogate" / "extensions" / "budget").mkdir(parents=True)
    (extension / ".manifest").write_text('{"roots": ["regogate/extensions/budget"]}', encoding="utf-8")
    (extension / "regogate" / "extensions" / "budget" / "budget.rego").write_text(
        "package regogate.extensions.budget\n\n"
        'deny contains {"rule": "no-big-sums", "message": "sums stay small"} if input.tool.arguments.a > 100\n',
        encoding="utf-8",
    )
    flags = ("--server-id", "acme", "--bundle", str(extension))
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(rego, [EVERYTHING_SERVER], *flags) as session:
            env = await session.call_tool("get-env", {})
            small = await session.call_tool("get-sum", {"a": 1, "b": 2})
            big = await session.call_tool("get-sum", {"a": 1000, "b": 2})
    assert text(env) == "[POLICY DENIED] no env"
    assert not small.is_error
    assert text(big) == "[POLICY DENIED] sums stay small"


async def test_tools_the_server_does_not_offer_are_reported_after_the_first_list(
    tmp_path: Path, private_state_home: Path
) -> None:
    policy = tmp_path / "everything.yaml"
    policy.write_text('version: "1"\ntools:\n  ehco:\n    rules: []\n', encoding="utf-8")
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, [EVERYTHING_SERVER]) as session:
            await session.list_tools()
    events = _events(private_state_home / "regogate" / "everything" / "audit.jsonl")
    (warning,) = [e for e in events if e["event"] == "unknown_tools"]
    assert warning["warnings"] == [f'{policy}:4: tools: "ehco" is not a tool this server offers; did you mean "echo"?']


async def test_unknown_tools_are_checked_against_every_page_and_again_after_a_reload(tmp_path: Path) -> None:
    # Our SDK server lists 9 tools, 3 a page: echo is on page 2, slow on page 3.
    policy = tmp_path / "paged.yaml"
    policy.write_text(
        'version: "1"\ntools:\n  echo:\n    rules: []\n  slow:\n    rules: []\n  shuot:\n    rules: []\n',
        encoding="utf-8",
    )
    audit = tmp_path / "audit.jsonl"

    def unknown() -> list[dict[str, Any]]:
        return [e for e in _events(audit) if e["event"] == "unknown_tools"]

    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, PAGED_SERVER, "--audit-log", str(audit)) as session:
            first = await session.list_tools()
            assert [t.name for t in first.tools] == ["ask", "big", "count"] and first.next_cursor
            second = await session.list_tools(params=PaginatedRequestParams(cursor=first.next_cursor))
            assert not unknown()  # echo (page 2) and slow (page 3) are no typos: no verdict before the end
            assert second.next_cursor
            third = await session.list_tools(params=PaginatedRequestParams(cursor=second.next_cursor))
            assert third.next_cursor is None
            while not unknown():
                await anyio.sleep(0.05)
            # Listing again finds the same tools: no second warning.
            await session.list_tools()
            await session.list_tools(params=PaginatedRequestParams(cursor="3"))
            await session.list_tools(params=PaginatedRequestParams(cursor="6"))
            policy.write_text(
                'version: "1"\ntools:\n  echo:\n    rules: []\n  shout:\n    rules: []\n  sloww:\n    rules: []\n',
                encoding="utf-8",
            )
            while len(unknown()) < 2:
                await anyio.sleep(0.1)
            assert not (await session.call_tool("echo", {"text": "hi"})).is_error
    listed, reloaded = unknown()
    assert listed["after"] == "tools/list" and listed["offered"] == 9
    assert listed["warnings"] == [f'{policy}:8: tools: "shuot" is not a tool this server offers; did you mean "shout"?']
    assert reloaded["after"] == "reload" and reloaded["offered"] == 9
    assert reloaded["warnings"] == [
        f'{policy}:8: tools: "sloww" is not a tool this server offers; did you mean "slow"?'
    ]
    reload_at = next(i for i, e in enumerate(_events(audit)) if e["event"] == "reload" and e["ok"])
    assert _events(audit).index(reloaded) > reload_at


def test_an_extension_bundle_without_roots_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "ext").mkdir()
    out = subprocess.run(
        [REGOGATE, "-c", str(POLICIES / "python.yaml"), "--bundle", str(tmp_path / "ext"), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2
    assert f"--bundle {tmp_path / 'ext'} has no .manifest" in out.stderr


def test_the_bundle_revision_does_not_depend_on_how_the_path_is_spelled(tmp_path: Path) -> None:
    revisions = set()
    for spelling, cwd in (("policies/python.yaml", POLICIES.parent), (str(POLICIES / "python.yaml"), tmp_path)):
        out = subprocess.run(
            [REGOGATE, "convert", "-c", spelling, "-o", str(tmp_path / "b")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
        )
        assert out.returncode == 0, out.stderr
        manifest = json.loads((tmp_path / "b" / ".manifest").read_text(encoding="utf-8"))
        revisions.add(manifest["revision"])
        bundle_text = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "b").rglob("*") if p.is_file())
        assert str(POLICIES) not in bundle_text and manifest["metadata"]["source"] == "python.yaml"
    assert len(revisions) == 1


def test_intercepts_flags_are_understood(tmp_path: Path) -> None:
    db = tmp_path / "counters.db"
    out = subprocess.run(
        [
            REGOGATE,
            "-c",
            str(POLICIES / "python.yaml"),
            "--state-dsn",
            f"sqlite://{db}",
            "--log-level",
            "WARN",
            "--state-dir",
            str(tmp_path / "st"),
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert db.exists()  # --state-dsn is --state
    assert (tmp_path / "st" / "python" / "audit.jsonl").exists()
