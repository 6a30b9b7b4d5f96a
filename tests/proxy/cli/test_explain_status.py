"""``regogate explain`` and ``regogate status`` read the real OPA's decision and the real store's counters."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from regogate.proxy.state import Reservation, SqliteStore, counter_key
from tests.conftest import POLICIES
from tests.e2e.harness import STANDIN, gated_session
from tests.http_servers import python_http_server
from tests.proxy.cli.conftest import REGOGATE, Cli

GITHUB = str(POLICIES / "github.yaml")


def _use(db: Path, key: str, window: str, times: int) -> None:
    """Count ``times`` calls on the github policy's ``key``, as regogate run does (under the server id)."""
    key = counter_key("github", key)

    async def reserve() -> None:
        store = SqliteStore(db)
        try:
            for _ in range(times):
                await store.reserve([Reservation(key, None, window, 1)], time.time())  # type: ignore[arg-type]
        finally:
            await store.aclose()

    anyio.run(reserve)


def test_explain_gives_every_reason_with_its_source_line(cli: Cli) -> None:
    out = cli("explain", "-c", GITHUB, "--tool", "push_files", "--args", '{"force": true, "branch": "main"}')
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("decision: DENY push_files (server id github, data.regogate.gate.decision)")
    assert f"1. no-force-push: Force pushes are blocked by policy  [{GITHUB}:36]" in out.stdout
    assert f"2. protected-branches: Pushes to protected branches need a pull request  [{GITHUB}:42]" in out.stdout


def test_explain_json_carries_the_exact_input_and_the_limits(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _use(db, "push_files/_rate_hour", "hour", 20)
    out = cli(
        "explain",
        "-c",
        GITHUB,
        "--tool",
        "push_files",
        "--args",
        '{"branch": "feature", "force": false}',
        "--state",
        f"sqlite://{db}",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["policy_allows"] is True and record["allow"] is False  # the budget of 20/hour is used up
    assert record["input"]["tool"] == {"name": "push_files", "arguments": {"branch": "feature", "force": False}}
    assert record["input"]["server"] == {"id": "github"} and record["input"]["kind"] == "tools/call"
    limits = {limit["key"]: limit for limit in record["rate_limits"]}
    assert limits["push_files/_rate_hour"]["current"] == 20 and limits["push_files/_rate_hour"]["admits"] is False
    assert limits["_global/_rate_hour"]["admits"] is True


def test_explain_passes_opas_explanation_through(cli: Cli) -> None:
    out = cli("explain", "-c", GITHUB, "--tool", "delete_branch", "--explain")
    assert out.returncode == 0, out.stderr
    assert "OPA's explanation (opa eval --explain full):" in out.stdout
    assert "Enter data.regogate.gate.decision" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--args", "[1]"], "--args: must be a JSON object"),
        (["--args", "{"], "--args: not JSON"),
        (["--opa-path", "regogate/nothing"], "data.regogate.nothing is undefined"),
    ],
)
def test_explain_refuses_bad_input_in_one_line(cli: Cli, args: list[str], message: str) -> None:
    out = cli("explain", "-c", GITHUB, "--tool", "push_files", *args)
    assert out.returncode == 1
    assert message in out.stderr and "Traceback" not in out.stderr


def test_status_shows_every_counter_with_use_limit_and_reset(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _use(db, "push_files/_rate_hour", "hour", 3)
    out = cli("status", "-c", GITHUB, "--state", f"sqlite://{db}", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["key"]: row for row in map(json.loads, out.stdout.splitlines()) if row["kind"] == "counter"}
    assert set(rows) == {"search_code/_rate_minute", "push_files/_rate_hour", "_global/_rate_hour"}
    push = rows["push_files/_rate_hour"]
    assert (push["server_id"], push["tool"], push["window"], push["used"], push["limit"]) == (
        "github",
        "push_files",
        "hour",
        3,
        20,
    )
    assert push["resets_at"].endswith(":00:00Z") and push["source"] == f"{GITHUB}:48"
    table = cli("status", "-c", GITHUB, "--state", f"sqlite://{db}")
    assert "push_files      hour    3     20" in table.stdout


def test_status_without_a_policy_and_no_audit_logs_says_what_to_pass(cli: Cli) -> None:
    out = cli("status")
    assert out.returncode == 1
    assert "no audit log with a start event under" in out.stderr and "pass -c POLICY" in out.stderr


@pytest.mark.anyio
async def test_status_finds_every_server_from_its_audit_log(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    env = {**cli.env, "XDG_STATE_HOME": str(cli.state)}
    with anyio.fail_after(60):
        async with gated_session(POLICIES / "python.yaml", STANDIN, "--state", f"sqlite://{db}", env=env) as session:
            for _ in range(2):
                assert not (await session.call_tool("black", {"path": "."})).is_error
    out = cli("status", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["key"]: row for row in map(json.loads, out.stdout.splitlines()) if row["kind"] == "counter"}
    assert rows["black/_rate_minute"]["server_id"] == "python"
    assert rows["black/_rate_minute"]["used"] == 2 and rows["black/_rate_minute"]["limit"] == 60


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_status_lists_pending_approvals_with_who_asked_until_answered(
    cli: Cli, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    state = f"sqlite:///{tmp_path}/state.db" if backend == "sqlite" else request.getfixturevalue("redis_local").url
    prefix = f"status-{tmp_path.name}"  # one Redis serves every test: keep to this test's keys
    policy = str(POLICIES / "python-approval.yaml")
    flags = ("--state", state, "--state-prefix", prefix, "--principal", "id=alice")
    before = time.time()
    with anyio.fail_after(60):
        async with gated_session(policy, STANDIN, *flags) as session:
            asked = await session.call_tool("conda", {"command": "remove numpy"})
            await session.call_tool("poetry", {"command": "remove requests"})
    assert asked.is_error
    approval_id = str(asked.content[0].text).split("Approval ", 1)[1].split(" ", 1)[0]  # type: ignore[union-attr]
    out = cli("status", "-c", policy, "--state", state, "--state-prefix", prefix, "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert {line["kind"] for line in lines} == {"counter", "approval"}
    approvals = [line for line in lines if line["kind"] == "approval"]
    assert [a["tool"] for a in approvals] == ["conda", "poetry"]
    conda = approvals[0]
    assert (conda["id"], conda["server_id"], conda["asked_by"], conda["rule"]) == (
        approval_id, "python_approval", "alice", "conda-needs-approval"
    )  # fmt: skip
    assert conda["client"] == "mcp" and conda["message"] == "Destructive operation: a person must approve it"
    since = time.mktime(time.strptime(conda["asked_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    expires = time.mktime(time.strptime(conda["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 1 <= since <= time.time() and expires - since == 300
    table = cli("status", "-c", policy, "--state", state, "--state-prefix", prefix)
    assert "pending approvals (2;" in table.stdout
    assert f"{approval_id}  conda" in table.stdout and "alice via mcp" in table.stdout
    answered = cli("approvals", "deny", approval_id, "--state", state, "--state-prefix", prefix)
    assert answered.returncode == 0, answered.stderr
    after = cli("status", "-c", policy, "--state", state, "--state-prefix", prefix, "--json")
    left = [json.loads(line) for line in after.stdout.splitlines()]
    assert [a["tool"] for a in left if a["kind"] == "approval"] == ["poetry"]


def test_status_of_a_memory_store_has_no_approvals_to_show(cli: Cli) -> None:
    out = cli("status", "-c", GITHUB, "--state", "memory")
    assert out.returncode == 0, out.stderr
    assert "pending approvals" not in out.stdout and "no approvals waiting" not in out.stdout


def test_status_says_so_when_the_approval_store_cannot_be_read(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _use(db, "push_files/_rate_hour", "hour", 1)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE regogate_approvals (junk TEXT)")
    out = cli("status", "-c", GITHUB, "--state", f"sqlite://{db}")
    assert out.returncode == 1
    assert out.stderr.startswith("regogate status: server id github: ") and "Traceback" not in out.stderr


def test_explain_takes_the_schema_from_an_upstream_url_and_names_the_caller_as_run_does(
    cli: Cli, tmp_path: Path
) -> None:
    policy = tmp_path / "remote.yaml"
    policy.write_text(
        'version: "1"\ndefault: deny\ntools:\n  echo:\n    rules:\n      - action: allow\n'
        "        validate: {required_args: true}\n",
        encoding="utf-8",
    )
    call = ("explain", "-c", str(policy), "--tool", "echo", "--args", '{"text": "hi"}', "--json")
    with python_http_server("--token", "explain-token-42") as server:
        remote = cli(
            *call, "--upstream", server.url, "--header-env", "Authorization=TOKEN", "--principal", "team=ops",
            env={"TOKEN": "Bearer explain-token-42", "REGOGATE_PRINCIPAL": '{"id": "bob"}'},
        )  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    record = json.loads(remote.stdout)
    assert record["allow"] is True and record["input"]["principal"] == {"id": "bob", "team": "ops"}
    assert record["input"]["tool"]["input_schema"]["required"] == ["text"]
    assert "explain-token-42" not in remote.stdout + remote.stderr
    # Without a server the schema is unknown: the validate rule denies, and explain says why.
    alone = cli(*call)
    assert alone.returncode == 0 and json.loads(alone.stdout)["allow"] is False
    assert "echo's inputSchema is unknown" in alone.stderr and "--upstream URL" in alone.stderr


def test_status_finds_a_policy_given_by_a_relative_path_from_another_directory(cli: Cli, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "python.yaml").write_text((POLICIES / "python.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    started = subprocess.run(
        [REGOGATE, "-c", "python.yaml", "--", *STANDIN],
        cwd=project,
        env=cli.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "regogate: audit log " in started.stderr  # the session ends at once (no client); the start is logged
    out = cli("status", "--json")  # run from tmp_path, not from the project
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["server_id"] for r in rows} == {"python"} and any(r["tool"] == "black" for r in rows)
