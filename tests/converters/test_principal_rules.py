"""Conditions on who is calling (``principal.<claim>``) and limits per principal: real OPA decides."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.core import PolicySourceError

POLICY = """\
version: "1"
tools:
  deploy:
    rules:
      - name: payments-only
        conditions:
          - path: principal.team
            op: eq
            value: payments
        on_deny: "Only the payments team deploys"
      - name: three-each
        rate_limit: 3/hour
        per: principal
  "*":
    rules:
      - name: no-guests
        conditions:
          - path: principal.guest
            op: exists
            value: false
        on_deny: "Guests may not call tools"
"""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("principal")
    source = base / "team.yaml"
    source.write_text(POLICY, encoding="utf-8")
    write_bundle(policy_bundle(load_policy(source), POLICY), base / "team")
    write_bundle(gate_bundle(), base / "gate")
    return [base / "team", base / "gate"]


def decide(opa_bin: str, bundles: list[Path], principal: dict[str, object] | None) -> dict[str, Any]:
    document: dict[str, object] = {
        "version": 1,
        "kind": "tools/call",
        "server": {"id": "team"},
        "tool": {"name": "deploy", "arguments": {}},
        "state": {},
    }
    if principal is not None:
        document["principal"] = principal
    args = [a for b in bundles for a in ("-b", str(b))]
    result = subprocess.run(
        [opa_bin, "eval", *args, "--stdin-input", "--format", "json", "data.regogate.gate.decision"],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    value: dict[str, Any] = json.loads(result.stdout)["result"][0]["expressions"][0]["value"]
    return value


def test_claims_decide_and_the_limit_is_keyed_by_principal(opa_bin: str, bundles: list[Path]) -> None:
    alice = decide(opa_bin, bundles, {"id": "alice", "team": "payments"})
    bob = decide(opa_bin, bundles, {"id": "bob", "team": "search"})
    guest = decide(opa_bin, bundles, {"id": "eve", "team": "payments", "guest": True})
    nobody = decide(opa_bin, bundles, None)
    assert alice["allow"] is True
    assert [limit["key"] for limit in alice["rate_limits"]] == ["deploy/_rate_hour/principal/alice"]
    assert (bob["allow"], bob["reasons"][0]["message"]) == (False, "Only the payments team deploys")
    assert (guest["allow"], guest["reasons"][0]["message"]) == (False, "Guests may not call tools")
    assert nobody["allow"] is False


def test_generated_tests_pass_and_the_rego_is_clean(opa_bin: str, bundles: list[Path]) -> None:
    args = [str(b) for b in bundles]
    assert subprocess.run([opa_bin, "fmt", "--list", "--fail", *args], capture_output=True).returncode == 0
    assert subprocess.run([opa_bin, "check", "--strict", *args], capture_output=True).returncode == 0
    tested = subprocess.run([opa_bin, "test", *args], capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("      - per: principal\n", "per: principal goes with rate_limit"),
        ("      - rate_limit: 3/hour\n        per: team\n", "per must be principal, not 'team'"),
        ("      - conditions:\n          - {path: principal, op: exists, value: true}\n", "or principal.<claim>"),
    ],
)
def test_misplaced_principal_settings_are_clear_errors(tmp_path: Path, rule: str, message: str) -> None:
    source = tmp_path / "bad.yaml"
    source.write_text(f'version: "1"\ntools:\n  deploy:\n    rules:\n{rule}', encoding="utf-8")
    with pytest.raises(PolicySourceError) as caught:
        load_policy(source)
    assert message in str(caught.value)
