"""What a real OPA decides for converted policies: the YAML's promises, call by call.

Every policy, the gate and a hand-written extension run in ONE `opa run --server`, selected by
server id, queried over OPA's REST Data API exactly as the proxy queries it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.proxy.state import MemoryStore, Refused, Reservation, Ticket
from tests.conftest import POLICIES
from tests.opa_server import Mode, opa_server

EXTENSION = """\
package regogate.extensions.acme

# Our own rule, next to the converted ones: nobody pushes on Fridays.
deny contains {"rule": "acme.no_friday_push", "message": "No pushes on Fridays"} if {
\tinput.server.id == "github"
\tinput.tool.name == "push_files"
\tinput.tool.arguments.friday == true
}
"""


@pytest.fixture(scope="module")
def opa_url(tmp_path_factory: pytest.TempPathFactory, opa_mode: Mode) -> Iterator[str]:
    base = tmp_path_factory.mktemp("opa")
    dirs = []
    for name in ("python", "github", "stripe", "filesystem"):
        path = POLICIES / f"{name}.yaml"
        write_bundle(policy_bundle(load_policy(path), path.read_text(encoding="utf-8")), base / name)
        dirs.append(base / name)
    write_bundle(gate_bundle(), base / "gate")
    ext = base / "acme"
    (ext / "regogate" / "extensions" / "acme").mkdir(parents=True)
    (ext / "regogate" / "extensions" / "acme" / "acme.rego").write_text(EXTENSION, encoding="utf-8")
    (ext / ".manifest").write_text('{"roots": ["regogate/extensions/acme"]}', encoding="utf-8")
    bundles = [*dirs, base / "gate", ext]
    with opa_server([a for d in bundles for a in ("-b", str(d))], mounts=bundles, mode=opa_mode) as server:
        yield server.url


def decide(url: str, server: str, tool: str, arguments: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    document = {
        "version": 1,
        "kind": "tools/call",
        "server": {"id": server},
        "tool": {"name": tool, "arguments": arguments or {}, "input_schema": extra.pop("schema", {"type": "object"})},
        "state": extra.pop("state", {}),
    }
    response = httpx.post(f"{url}/v1/data/regogate/gate/decision?strict-builtin-errors=true", json={"input": document})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def message(decision: dict[str, Any]) -> str | None:
    return decision["reasons"][0]["message"] if decision["reasons"] else None


def test_seed_policy_decisions(opa_url: str) -> None:
    conda = decide(opa_url, "python", "conda", {"command": "remove"})
    assert (conda["allow"], message(conda)) == (False, "Destructive operation blocked by policy")
    unlisted = decide(opa_url, "python", "rm-rf")
    assert (unlisted["allow"], message(unlisted)) == (False, 'Tool "rm-rf" is not permitted by policy')
    schema = {"type": "object", "required": ["command"], "properties": {"command": {"type": "string"}}}
    missing = decide(opa_url, "python", "uv-run", {}, schema=schema)
    assert (missing["allow"], message(missing)) == (False, 'missing required argument "command"')
    empty = decide(opa_url, "python", "uv-run", {"command": ""}, schema=schema)
    assert empty["allow"] is False
    ok = decide(opa_url, "python", "uv-run", {"command": "pytest"}, schema=schema)
    assert ok["allow"] is True
    assert [(lim["key"], lim["limit"], lim["window"]) for lim in ok["rate_limits"]] == [
        ("uv-run/_rate_hour", 10, "hour")
    ]
    pip = decide(opa_url, "python", "pip-install", {"packages": ["requests"]})
    assert pip["allow"] is True
    assert pip["rate_limits"] == [
        {
            "key": "pip-install/_rate_hour",
            "limit": 30,
            "exclusive": False,
            "window": "hour",
            "cost": 1,
            "rule": "pip-install[0]",
            "message": "Rate limit of 30 per hour reached. Try again later.",
        }
    ]


@pytest.mark.anyio
async def test_seed_pip_install_31st_call_in_an_hour_is_refused(opa_url: str) -> None:
    """OPA declares the limit on every call; the proxy's own store counts them."""
    store = MemoryStore()
    now = 1_795_510_800.0  # 09:00:00 UTC, the start of an hour window
    outcomes = []
    for i in range(31):
        decision = decide(opa_url, "python", "pip-install", {"packages": [f"p{i}"]})
        assert decision["allow"] is True
        items = [Reservation(d["key"], d["limit"], d["window"], d["cost"]) for d in decision["rate_limits"]]
        outcomes.append(await store.reserve(items, now + i))
    assert all(isinstance(o, Ticket) for o in outcomes[:30])
    refused = outcomes[30]
    assert isinstance(refused, Refused) and refused.reservation.key == "pip-install/_rate_hour"
    assert isinstance(await store.reserve(items, now + 3600), Ticket)  # the next hour starts afresh


GITHUB_TABLE = [
    ("get_file_contents", {"path": "README.md"}, True, None),
    ("delete_repository", {}, False, 'Tool "delete_repository" is hidden by policy'),
    ("fork_repository", {}, False, 'Tool "fork_repository" is not permitted by policy'),
    ("push_files", {"branch": "feature", "force": False}, True, None),
    ("push_files", {"branch": "feature", "force": True}, False, "Force pushes are blocked by policy"),
    ("push_files", {"branch": "feature"}, False, "Force pushes are blocked by policy"),  # path must resolve
    ("push_files", {"branch": "main", "force": False}, False, "Pushes to protected branches need a pull request"),
    ("push_files", {"branch": "feature", "force": False, "friday": True}, False, "No pushes on Fridays"),
    ("create_issue", {"title": "Crash on start", "labels": ["bug", "needs-triage"]}, True, None),
    ("create_issue", {"title": "Bad", "labels": ["needs-triage"]}, False, "Issue titles must be 5 to 120 characters"),
    ("create_issue", {"title": 12345, "labels": ["needs-triage"]}, False, "Issue titles must be 5 to 120 characters"),
    ("create_issue", {"title": "Crash on start", "labels": "needs-triage"}, True, None),  # substring of a string
    (
        "create_issue",
        {"title": "Crash on start", "labels": ["bug"]},
        False,
        "New issues must carry the needs-triage label",
    ),
    (
        "merge_pull_request",
        {"merge_method": "squash"},
        False,
        'Tool "merge_pull_request" requires a person\'s approval',
    ),
    ("merge_pull_request", {"merge_method": "rebase"}, True, None),
    ("create_pull_request", {"base": "develop", "draft": False}, True, None),
    ("create_pull_request", {"base": "develop", "draft": None}, False, 'Denied by rule "pr-base-allowed"'),
    ("create_pull_request", {"base": "prod", "draft": True}, False, 'Denied by rule "pr-base-allowed"'),
    ("delete_branch", {"branch": "x"}, False, "Branch deletion is done by humans"),
]


@pytest.mark.parametrize(("tool", "arguments", "allowed", "expected"), GITHUB_TABLE)
def test_github_policy(opa_url: str, tool: str, arguments: dict[str, Any], allowed: bool, expected: str | None) -> None:
    decision = decide(opa_url, "github", tool, arguments)
    assert (decision["allow"], message(decision)) == (allowed, expected)


def test_github_wildcard_limit_applies_to_every_allowed_call_with_the_tools_own(opa_url: str) -> None:
    decision = decide(opa_url, "github", "push_files", {"branch": "feature", "force": False})
    assert [lim["key"] for lim in decision["rate_limits"]] == ["_global/_rate_hour", "push_files/_rate_hour"]
    denied = decide(opa_url, "github", "push_files", {"branch": "main", "force": False})
    assert denied["rate_limits"] == []


STRIPE_TABLE = [
    ("create_charge", {"amount": 1500, "currency": "usd"}, {}, True, None),
    ("create_charge", {"amount": 1500.0, "currency": "eur"}, {}, True, None),
    ("create_charge", {"amount": 1500, "currency": "jpy"}, {}, False, "Only USD, EUR and GBP charges are allowed"),
    ("create_charge", {"amount": 90000, "currency": "usd"}, {}, False, "Charges must be between 0.01 and 500.00"),
    ("create_charge", {"amount": "1500", "currency": "usd"}, {}, False, "Charges must be between 0.01 and 500.00"),
    ("create_refund", {"metadata": {"reason": "dup"}}, {"create_charge": {"daily_volume": 10}}, True, None),
    (
        "create_refund",
        {"metadata": {"reason": "dup", "internal_note": "x"}},
        {"create_charge": {"daily_volume": 10}},
        False,
        'Denied by rule "refund-reason-given"',
    ),
    (
        "create_refund",
        {"metadata": {"reason": "dup", "internal_note": None}},
        {"create_charge": {"daily_volume": 10}},
        True,
        None,
    ),
    (
        "create_refund",
        {"metadata": {"reason": "dup"}},
        {"create_charge": {"daily_volume": 0}},
        False,
        "Refunds need a charge today",
    ),
    (
        "update_customer",
        {"email": "a@example.org", "tier": "gold", "age": 30, "tags": [7, 8], "note": "ok then"},
        {},
        True,
        None,
    ),
    (
        "update_customer",
        {"email": "a@evil.com", "tier": "gold", "age": 30, "tags": [7], "note": "ok"},
        {},
        False,
        'Denied by rule "customer-email-domain"',
    ),
    (
        "update_customer",
        {"email": "a@example.com", "tier": "vip", "age": 30, "tags": [7], "note": "ok"},
        {},
        False,
        'Denied by rule "customer-not-vip"',
    ),
    (
        "update_customer",
        {"email": "a@example.com", "tier": "gold", "age": True, "tags": [7], "note": "ok"},
        {},
        False,
        'Denied by rule "customer-age"',
    ),
    (
        "update_customer",
        {"email": "a@example.com", "tier": "gold", "age": 30, "tags": [7.0], "note": "okay"},
        {},
        True,
        None,
    ),
    (
        "update_customer",
        {"email": "a@example.com", "tier": "gold", "age": 30, "tags": "7", "note": "ok"},
        {},
        False,
        'Denied by rule "customer-tags"',
    ),
    (
        "delete_customer",
        {"id": "cus_1"},
        {},
        False,
        'Tool "delete_customer" requires a person\'s approval',
    ),
    ("create_payout", {}, {}, False, 'Denied by rule "create_payout[0]"'),
    ("list_customers", {}, {}, True, None),  # default: allow
]


@pytest.mark.parametrize(("tool", "arguments", "state", "allowed", "expected"), STRIPE_TABLE)
def test_stripe_policy(
    opa_url: str, tool: str, arguments: dict[str, Any], state: dict[str, Any], allowed: bool, expected: str | None
) -> None:
    decision = decide(opa_url, "stripe", tool, arguments, state=state)
    assert (decision["allow"], message(decision)) == (allowed, expected)


def test_stripe_counters_are_declared_with_cost_from_arguments(opa_url: str) -> None:
    decision = decide(opa_url, "stripe", "create_charge", {"amount": 1234.5, "currency": "gbp"})
    declared = {lim["key"]: (lim["limit"], lim["window"], lim["cost"]) for lim in decision["rate_limits"]}
    # Intercept counts the whole-number part of the amount.
    assert declared == {"create_charge/daily_volume": (1000000, "day", 1234), "_global/calls": (1000, "hour", 1)}
    refund = decide(
        opa_url, "stripe", "create_refund", {"metadata": {"reason": "x"}}, state={"create_charge": {"daily_volume": 5}}
    )
    limits = {lim["key"]: (lim["limit"], lim["exclusive"]) for lim in refund["rate_limits"]}
    assert limits["create_refund/refunds_today"] == (11, True)  # lt 11


def test_stripe_schema_validation_names_the_field(opa_url: str) -> None:
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}}
    decision = decide(opa_url, "stripe", "list_customers", {"amount": "ten"}, schema=schema)
    assert decision["allow"] is False
    assert message(decision) == "argument amount is invalid: Invalid type. Expected: integer, given: string"
    unknown = httpx.post(
        f"{opa_url}/v1/data/regogate/gate/decision",
        json={
            "input": {
                "version": 1,
                "kind": "tools/call",
                "server": {"id": "stripe"},
                "tool": {"name": "list_customers", "arguments": {}},
            }
        },
    ).json()["result"]
    assert unknown["allow"] is False
    assert message(unknown) == "cannot check the arguments: the input schema of this tool is unknown"


def test_tools_list_hides_tools_per_server(opa_url: str) -> None:
    document = {
        "version": 1,
        "kind": "tools/list",
        "server": {"id": "github"},
        "tools": [{"name": "push_files"}, {"name": "delete_repository"}],
    }
    result = httpx.post(f"{opa_url}/v1/data/regogate/gate/decision", json={"input": document}).json()["result"]
    assert result == {"allow": True, "reasons": [], "hidden": ["delete_repository"]}


def test_unknown_server_id_is_denied_not_allowed(opa_url: str) -> None:
    decision = decide(opa_url, "nobody", "anything")
    assert decision["allow"] is False
    assert message(decision) == 'no policy is loaded for server id "nobody"'


def test_opa_eval_gives_the_same_decision_as_the_server(opa_url: str, opa_bin: str, tmp_path: Path) -> None:
    path = POLICIES / "python.yaml"
    write_bundle(policy_bundle(load_policy(path), path.read_text(encoding="utf-8")), tmp_path / "python")
    write_bundle(gate_bundle(), tmp_path / "gate")
    document = (
        '{"version": 1, "kind": "tools/call", "server": {"id": "python"}, "tool": {"name": "poetry", "arguments": {}}}'
    )
    out = subprocess.run(
        [
            opa_bin,
            "eval",
            "-f",
            "raw",
            "-b",
            str(tmp_path / "python"),
            "-b",
            str(tmp_path / "gate"),
            "-I",
            "data.regogate.gate.decision.allow",
        ],
        input=document,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "false"
    assert decide(opa_url, "python", "poetry")["allow"] is False
