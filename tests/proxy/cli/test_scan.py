"""``regogate scan``: a real server's tools become a grouped, commented policy that validates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from regogate.converters import load_policy, parse_policy
from regogate.proxy.cli._scan import scaffold
from tests.e2e.harness import PAGED_SERVER
from tests.http_servers import everything_http_server, python_http_server
from tests.proxy.cli.conftest import EVERYTHING, Cli


def _policy(text: str) -> dict[str, Any]:
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def test_scan_of_a_real_server_writes_a_policy_that_validates(cli: Cli, tmp_path: Path) -> None:
    out = cli("scan", "-o", "scanned/everything.yaml", "--", EVERYTHING)
    assert out.returncode == 0, out.stderr
    written = tmp_path / "scanned" / "everything.yaml"
    assert "wrote scanned/everything.yaml (13 tools)" in out.stderr
    policy = load_policy(written)
    tools = {tool.name: tool for tool in policy.tools}
    assert len(tools) == 13 and policy.default == "deny"
    # echo is read-only and closed-world with a required argument: allowed, arguments checked, no budget.
    echo = tools["echo"].rules
    assert len(echo) == 1 and echo[0].action == "allow" and echo[0].required_args and echo[0].rate_limit is None
    # A write (not read-only, not destructive, closed world) gets a budget.
    logging_rules = tools["toggle-simulated-logging"].rules
    assert logging_rules[0].rate_limit is not None and logging_rules[0].rate_limit.window == "hour"
    text = written.read_text(encoding="utf-8")
    assert "# Echoes back the input string" in text
    assert text.index("# --- Write") < text.index("# --- Execute") < text.index("# --- Read")
    again = cli("validate", "-c", str(written), "--", EVERYTHING)
    assert again.returncode == 0, again.stderr
    assert "no names in the policy it does not offer" in again.stdout


def test_a_tool_without_annotations_is_destructive_and_denied() -> None:
    text = scaffold([{"name": "wipe", "description": "Removes everything."}], ["srv"])
    tool = _policy(text)["tools"]["wipe"]
    assert tool == {"rules": [{"action": "deny", "on_deny": "wipe is destructive: blocked by policy until reviewed"}]}
    assert "# --- Destructive" in text


@pytest.mark.parametrize(
    ("annotations", "rules"),
    [
        ({"readOnlyHint": True, "openWorldHint": False}, []),
        ({"readOnlyHint": True}, [{"action": "allow", "rate_limit": "60/minute"}]),
        (
            {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": False},
            [{"action": "allow", "rate_limit": "30/hour"}],
        ),
        ({"readOnlyHint": False, "destructiveHint": False}, [{"action": "allow", "rate_limit": "10/hour"}]),
    ],
)
def test_annotations_decide_the_rule(annotations: dict[str, object], rules: list[object]) -> None:
    text = scaffold([{"name": "t", "annotations": annotations}], ["srv"])
    assert _policy(text)["tools"] == {"t": {"rules": rules}}
    parse_policy(text, source="t.yaml", server_id="t")


def test_hostile_names_and_descriptions_stay_data() -> None:
    entries: list[dict[str, object]] = [
        {
            "name": 'evil"\nname: x',
            "description": 'line one\n  "*":\n    rules: [{action: allow}]\r\u2028# end',
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
            "inputSchema": {"type": "object", "required": ["p"], "properties": {"p": {}, "q": {}}},
        },
        {"name": "wipe"},
    ]
    text = scaffold(entries, ["srv", "--flag"])
    loaded = _policy(text)
    assert set(loaded["tools"]) == {'evil"\nname: x', "wipe"}
    assert loaded["tools"]['evil"\nname: x'] == {"rules": [{"action": "allow", "validate": {"required_args": True}}]}
    parse_policy(text, source="t.yaml", server_id="t")


def test_scan_without_a_command_says_so(cli: Cli) -> None:
    out = cli("scan")
    assert out.returncode != 0
    assert "no MCP server command given after --" in out.stderr


def test_scan_of_a_command_that_does_not_exist_fails_cleanly(cli: Cli) -> None:
    out = cli("scan", "--", "/nonexistent/server")
    assert out.returncode == 1
    assert "cannot start the MCP server" in out.stderr and "Traceback" not in out.stderr


def test_validate_warns_about_tools_the_server_does_not_offer(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "typo.yaml"
    policy.write_text(
        'version: "1"\ntools:\n  ehco:\n    rules: []\n  get-sum:\n    rules: []\nhide: [get-tiny-imag]\n',
        encoding="utf-8",
    )
    out = cli("validate", "-c", str(policy), "--", EVERYTHING)
    assert out.returncode == 1
    assert f'{policy}:4: tools: "ehco" is not a tool this server offers; did you mean "echo"?' in out.stderr
    assert (
        f'{policy}:7: hide: "get-tiny-imag" is not a tool this server offers; did you mean "get-tiny-image"?'
        in out.stderr
    )
    assert "get-sum" not in out.stderr


def test_validate_checks_every_page_of_a_paginating_server(cli: Cli, tmp_path: Path) -> None:
    # Our SDK server lists 3 tools a page; slow is on the last page, shuot is nowhere.
    policy = tmp_path / "paged.yaml"
    policy.write_text('version: "1"\ntools:\n  slow:\n    rules: []\n  shuot:\n    rules: []\n', encoding="utf-8")
    out = cli("validate", "-c", str(policy), "--", *PAGED_SERVER)
    assert out.returncode == 1, out.stderr
    assert f'{policy}:6: tools: "shuot" is not a tool this server offers; did you mean "shout"?' in out.stderr
    assert "slow" not in out.stderr
    assert "the server offers 9 tools; 1 name in the policy it does not offer" in out.stdout


def test_scan_of_a_paginating_server_lists_every_page(cli: Cli, tmp_path: Path) -> None:
    out = cli("scan", "-o", "paged.yaml", "--", *PAGED_SERVER)
    assert out.returncode == 0, out.stderr
    policy = load_policy(tmp_path / "paged.yaml")
    assert sorted(t.name for t in policy.tools) == [
        "ask", "big", "count", "echo", "route", "sample", "sample_later", "shout", "slow"
    ]  # fmt: skip


def test_scan_upstream_of_server_everything_matches_its_stdio_scan(cli: Cli, tmp_path: Path) -> None:
    with everything_http_server() as server:
        out = cli("scan", "-o", "remote.yaml", "--upstream", server.url)
        assert out.returncode == 0, out.stderr
        remote = (tmp_path / "remote.yaml").read_text(encoding="utf-8")
        again = cli("validate", "-c", "remote.yaml", "--upstream", server.url)
    assert again.returncode == 0, again.stderr
    assert "no names in the policy it does not offer" in again.stdout
    assert f"# Policy scaffold written by regogate scan --upstream {server.url}" in remote
    local = cli("scan", "--", EVERYTHING)
    assert local.returncode == 0, local.stderr
    # The same server over HTTP and over stdio gives the same tools and rules.
    assert yaml.safe_load(remote)["tools"] == yaml.safe_load(local.stdout)["tools"]
    assert len(load_policy(tmp_path / "remote.yaml").tools) >= 13


def test_scan_upstream_pages_through_our_server_and_keeps_its_token_secret(cli: Cli, tmp_path: Path) -> None:
    token = "s3cret-token-for-scan"
    with python_http_server("--token", token, "--page-size", "3") as server:
        out = cli(
            "scan", "-o", "remote.yaml", "--upstream", server.url, "--header-env", "Authorization=MCP_AUTH",
            env={"MCP_AUTH": f"Bearer {token}"},
        )  # fmt: skip
        wrong = cli("scan", "--upstream", server.url, "--header", "Authorization: Bearer not-the-token-xyz")
        typo = tmp_path / "typo.yaml"
        typo.write_text('version: "1"\ntools:\n  slwo:\n    rules: []\n', encoding="utf-8")
        checked = cli(
            "validate", "-c", str(typo), "--upstream", server.url, "--header-env", "Authorization=MCP_AUTH",
            env={"MCP_AUTH": f"Bearer {token}"},
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    written = (tmp_path / "remote.yaml").read_text(encoding="utf-8")
    assert sorted(t.name for t in load_policy(tmp_path / "remote.yaml").tools) == [
        "ask", "big", "count", "echo", "route", "sample", "sample_later", "shout", "slow"
    ]  # fmt: skip
    assert "wrote remote.yaml (9 tools)" in out.stderr
    assert wrong.returncode != 0
    assert checked.returncode == 1
    assert f'{typo}:4: tools: "slwo" is not a tool this server offers; did you mean "slow"?' in checked.stderr
    for text in (out.stdout, out.stderr, written, wrong.stdout, wrong.stderr, checked.stdout, checked.stderr):
        assert token not in text and "not-the-token-xyz" not in text and "Traceback" not in text


def test_scan_upstream_answering_401_fails_in_one_line_without_the_header(cli: Cli) -> None:
    with python_http_server("--token", "right-token-1234") as server:
        out = cli("scan", "--upstream", server.url, "--header", "Authorization: Bearer wrong-token-5678")
    assert out.returncode == 1
    assert out.stderr.startswith("regogate: ") and out.stderr.count("\n") == 1, out.stderr
    assert "HTTP 401" in out.stderr and "wrong-token-5678" not in out.stderr


def test_scan_upstream_with_a_command_too_is_a_usage_error(cli: Cli) -> None:
    out = cli("scan", "--upstream", "http://127.0.0.1:9/mcp", "--", "server")
    assert out.returncode == 2
    assert "give either --upstream URL or a command after --, not both" in out.stderr
