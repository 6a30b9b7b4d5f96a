"""regogate as a user runs it: real client, real regogate, real OPA, real MCP servers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import POLICIES, alive
from tests.e2e.harness import (
    FILESYSTEM_SERVER,
    REGOGATE,
    STANDIN,
    TIME_SERVER,
    children,
    command_line,
    gated_session,
    processes_mentioning,
    text,
)

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 30  # one whole session; real servers start in well under a second


def audit_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def policy_copy(tmp_path: Path):  # type: ignore[no-untyped-def]
    def copy(name: str) -> Path:
        target = tmp_path / f"{name}.yaml"
        shutil.copy(POLICIES / f"{name}.yaml", target)
        return target

    return copy


async def test_filesystem_denied_write_leaves_no_file_and_allowed_write_lands(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    audit = tmp_path / "audit.jsonl"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(
            POLICIES / "filesystem.yaml", [FILESYSTEM_SERVER, str(root)], "--audit-log", str(audit)
        ) as session:
            denied = await session.call_tool("write_file", {"path": str(root / "run.sh"), "content": "rm -rf /"})
            allowed = await session.call_tool("write_file", {"path": str(root / "notes.txt"), "content": "secret-ish"})
    assert denied.is_error and text(denied) == "[POLICY DENIED] Only .txt, .md and .json files may be written"
    assert denied.meta is not None
    assert denied.meta["regogate/decision"]["rule"] == "write-text-files-only"
    assert not (root / "run.sh").exists()
    assert not allowed.is_error
    assert (root / "notes.txt").read_text(encoding="utf-8") == "secret-ish"
    log = audit_events(audit)
    decisions = [e for e in log if e["event"] == "decision"]
    assert [(e["tool"], e["allow"], e["rule"]) for e in decisions] == [
        ("write_file", False, "write-text-files-only"),
        ("write_file", True, None),
    ]
    assert decisions[0]["decision_id"] == denied.meta["regogate/decision"]["decision_id"]
    assert "secret-ish" not in audit.read_text(encoding="utf-8")  # arguments are hashed by default
    assert log[0]["event"] == "start" and log[-1]["event"] == "shutdown"
    assert log[0]["opa_version"] not in ("", "unknown")


async def test_hidden_tool_is_absent_from_the_list_and_denied_when_called(tmp_path: Path) -> None:
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(POLICIES / "filesystem.yaml", [FILESYSTEM_SERVER, str(tmp_path)]) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            moved = await session.call_tool("move_file", {"source": "a", "destination": "b"})
            unlisted = await session.call_tool("list_directory_with_sizes", {"path": str(tmp_path)})
    assert "move_file" not in names and "write_file" in names
    assert text(moved) == '[POLICY DENIED] Tool "move_file" is hidden by policy'
    # default: deny refuses a real tool the policy does not list
    assert text(unlisted) == '[POLICY DENIED] Tool "list_directory_with_sizes" is not permitted by policy'


async def test_seed_policy_against_the_stand_in(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(POLICIES / "python.yaml", STANDIN, "--audit-log", str(audit)) as session:
            conda = await session.call_tool("conda", {"command": "remove --all"})
            no_command = await session.call_tool("uv-run", {})
            run = await session.call_tool("uv-run", {"command": "pytest"})
            failed = await session.call_tool("pip-install", {"packages": ["fail-me"]})
            installs = [await session.call_tool("pip-install", {"packages": [f"p{i}"]}) for i in range(31)]
    assert text(conda) == "[POLICY DENIED] Destructive operation blocked by policy"
    assert text(no_command) == '[POLICY DENIED] missing required argument "command"'
    assert not run.is_error
    # The failed install was rolled back, so 30 more fit in the hour and the 31st is refused.
    assert failed.is_error and "[POLICY DENIED]" not in text(failed)
    assert [r.is_error for r in installs] == [False] * 30 + [True]
    assert text(installs[-1]) == "[POLICY DENIED] Rate limit of 30 per hour reached. Try again later."
    outcomes = [e["limit"] for e in audit_events(audit) if e["event"] == "limit" and e["tool"] == "pip-install"]
    assert outcomes[0] == "rolled_back" and outcomes[1:] == ["committed"] * 30


async def test_dry_run_decides_and_logs_but_never_blocks(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(POLICIES / "python.yaml", STANDIN, "--dry-run", "--audit-log", str(audit)) as session:
            conda = await session.call_tool("conda", {"command": "list"})
    assert not conda.is_error and text(conda) == "(stand-in) would run: conda list"
    decision = next(e for e in audit_events(audit) if e["event"] == "decision")
    assert (decision["allow"], decision["forwarded"], decision["dry_run"]) == (False, True, True)
    assert decision["message"] == "Destructive operation blocked by policy"


async def test_calls_fail_closed_when_opa_dies_mid_session(tmp_path: Path) -> None:
    policy = tmp_path / "marker-opa-dies.yaml"
    shutil.copy(POLICIES / "python.yaml", policy)
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, STANDIN) as session:
            before = await session.call_tool("black", {"path": "."})
            (regogate,) = [p for p in processes_mentioning(str(policy)) if "regogate" in command_line(p)]
            opa = [p for p in children(regogate) if "opa" in command_line(p).split()[0]]
            assert len(opa) == 1
            os.kill(opa[0], signal.SIGKILL)
            after = await session.call_tool("black", {"path": "."})
    assert not before.is_error
    assert after.is_error
    assert text(after) == "[POLICY DENIED] policy check unavailable (opa_unreachable)"


async def test_hot_reload_applies_valid_edits_and_keeps_the_policy_on_invalid_ones(tmp_path: Path) -> None:
    policy = tmp_path / "python.yaml"
    shutil.copy(POLICIES / "python.yaml", policy)
    audit = tmp_path / "audit.jsonl"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, STANDIN, "--audit-log", str(audit)) as session:
            assert not (await session.call_tool("pytest", {"path": "."})).is_error
            edited = policy.read_text(encoding="utf-8").replace(
                "  pytest:\n    rules:\n      - action: allow\n        rate_limit: 60/minute",
                '  pytest:\n    rules:\n      - action: deny\n        on_deny: "pytest is off today"',
            )
            policy.write_text(edited, encoding="utf-8")
            while (result := await session.call_tool("pytest", {"path": "."})).is_error is False:
                await anyio.sleep(0.1)
            assert text(result) == "[POLICY DENIED] pytest is off today"
            policy.write_text(edited.replace("action: deny", "action: denny"), encoding="utf-8")
            while not any(e["event"] == "reload" and not e["ok"] for e in audit_events(audit)):
                assert text(await session.call_tool("pytest", {"path": "."})) == "[POLICY DENIED] pytest is off today"
                await anyio.sleep(0.1)
            still = await session.call_tool("pytest", {"path": "."})
    assert text(still) == "[POLICY DENIED] pytest is off today"
    reloads = [e for e in audit_events(audit) if e["event"] == "reload"]
    assert reloads[0]["ok"] is True and reloads[-1]["ok"] is False
    errors = reloads[-1]["errors"]
    assert isinstance(errors, list) and any("unknown action 'denny'" in err for err in errors)


async def test_time_server_from_pypi_through_the_gate(tmp_path: Path) -> None:
    policy = tmp_path / "time.yaml"
    policy.write_text(
        'version: "1"\ndefault: deny\ntools:\n  get_current_time:\n    rules:\n      - name: known-zones\n'
        "        conditions:\n          - {path: args.timezone, op: in, value: [UTC, Europe/London]}\n",
        encoding="utf-8",
    )
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, [TIME_SERVER]) as session:
            utc = await session.call_tool("get_current_time", {"timezone": "UTC"})
            tokyo = await session.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
            convert = await session.call_tool(
                "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/London"}
            )
    assert not utc.is_error and '"timezone": "UTC"' in text(utc)
    assert text(tokyo) == '[POLICY DENIED] Denied by rule "known-zones"'
    assert text(convert) == '[POLICY DENIED] Tool "convert_time" is not permitted by policy'


async def test_regogate_and_its_opa_are_gone_after_the_client_leaves(tmp_path: Path) -> None:
    policy = tmp_path / "marker-clean-exit.yaml"
    shutil.copy(POLICIES / "python.yaml", policy)
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, STANDIN) as session:
            (regogate,) = [p for p in processes_mentioning(str(policy)) if "regogate" in command_line(p)]
            family = children(regogate)
            assert len(family) == 3  # the embedded OPA, the upstream and the watchdog
            assert any("lifecycle/_watchdog_process.py" in command_line(pid) for pid in family)
            await session.call_tool("black", {"path": "."})
        with anyio.fail_after(3):
            while any(alive(pid) for pid in [regogate, *family]):
                await anyio.sleep(0.05)


def test_invalid_policy_refuses_to_start_and_lists_every_problem(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text('version: "1"\ntools:\n  a:\n    rules:\n      - on_denny: x\n      - rate_limit: 0/hour\n')
    out = subprocess.run([REGOGATE, "-c", str(policy), "--", *STANDIN], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stdout == ""
    assert f"{policy}:5:9: tools.a.rules[0].on_denny: unknown key 'on_denny'" in out.stderr
    assert f"{policy}:6:21: tools.a.rules[1].rate_limit: rate_limit of 0 admits nothing" in out.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-c", "policies/python.yaml"], "no upstream MCP server: give a command after -- or --upstream URL"),
        (["-c", "policies/python.yaml", "--fail-mode", "sometimes", "--", "x"], "invalid choice: 'sometimes'"),
        (["--", "x"], "the following arguments are required: -c/--config"),
    ],
)
def test_wrong_usage_is_one_line_and_exit_2(args: list[str], expected: str) -> None:
    out = subprocess.run([REGOGATE, *args], capture_output=True, text=True, timeout=30, cwd=POLICIES.parent)
    assert out.returncode == 2
    assert expected in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_help_documents_every_flag_with_an_example() -> None:
    out = subprocess.run([REGOGATE, "run", "--help"], capture_output=True, text=True, timeout=30)
    for flag in (
        "--opa-url",
        "--opa-path",
        "--opa-timeout",
        "--fail-mode",
        "--dry-run",
        "--state",
        "--state-prefix",
        "--audit-log",
        "--log-args",
        "--log-level",
        "--server-id",
        "--opa-bin",
    ):
        assert flag in out.stdout
    assert "regogate -c policies/python.yaml -- npx -y some-mcp-server" in out.stdout


def test_missing_opa_binary_says_how_to_get_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "REGOGATE_OPA": "", "REGOGATE_CACHE": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run(
        [REGOGATE, "-c", str(POLICIES / "python.yaml"), "--", *STANDIN],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert out.returncode == 1
    for way in ("openpolicyagent.org/downloads/", "openpolicyagent/opa:", "brew install opa", "go install", "doctor"):
        assert way in out.stderr
    # A wheel user has no checkout: the message must not send them to one.
    assert "make setup" not in out.stderr and "scripts/" not in out.stderr


async def test_a_hand_written_rego_directory_with_a_bare_boolean_decision(tmp_path: Path) -> None:
    rego = tmp_path / "acme"
    (rego / "acme").mkdir(parents=True)
    (rego / "acme" / "policy.rego").write_text(
        'package acme\n\ndefault allow := false\n\nallow if input.tool.name == "black"\n', encoding="utf-8"
    )
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(rego, STANDIN, "--server-id", "acme", "--opa-path", "acme/allow") as session:
            black = await session.call_tool("black", {"path": "."})
            mypy = await session.call_tool("mypy", {"path": "."})
    assert not black.is_error
    assert text(mypy) == "[POLICY DENIED] Denied by policy"


async def test_counters_survive_a_policy_reload(tmp_path: Path) -> None:
    policy = tmp_path / "filesystem.yaml"
    # An hourly budget: a minute's window could roll over between the calls on a slow machine.
    source = (POLICIES / "filesystem.yaml").read_text(encoding="utf-8")
    assert "rate_limit: 5/minute" in source
    policy.write_text(source.replace("rate_limit: 5/minute", "rate_limit: 5/hour"), encoding="utf-8")
    root = tmp_path / "files"
    root.mkdir()
    audit = tmp_path / "audit.jsonl"

    async def write(session: Any, i: int) -> Any:
        return await session.call_tool("write_file", {"path": str(root / f"{i}.txt"), "content": "x"})

    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, [FILESYSTEM_SERVER, str(root)], "--audit-log", str(audit)) as session:
            first = [await write(session, i) for i in range(3)]
            policy.write_text(
                policy.read_text(encoding="utf-8").replace("At most 5 writes a minute", "Slow down: 5 writes a minute"),
                encoding="utf-8",
            )
            while not any(e["event"] == "reload" for e in audit_events(audit)):
                await anyio.sleep(0.05)
            rest = [await write(session, i) for i in range(3, 6)]
    assert [r.is_error for r in first + rest] == [False] * 5 + [True]
    assert text(rest[-1]) == "[POLICY DENIED] Slow down: 5 writes a minute"


def test_full_argument_logging_is_opt_in(tmp_path: Path) -> None:
    async def session(flag: str) -> str:
        audit = tmp_path / f"audit-{flag}.jsonl"
        with anyio.fail_after(SESSION_TIMEOUT):
            async with gated_session(
                POLICIES / "python.yaml", STANDIN, "--audit-log", str(audit), "--log-args", flag
            ) as s:
                await s.call_tool("black", {"path": "very-private-path"})
        return audit.read_text(encoding="utf-8")

    assert "very-private-path" in anyio.run(session, "full")
    assert "very-private-path" not in anyio.run(session, "none")
    assert "args_hash" not in anyio.run(session, "none").split('"event": "decision"')[1]
