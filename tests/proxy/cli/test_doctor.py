"""``regogate doctor``: every check on a real OPA and store, and an exit status that says whether all is well."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import POLICIES
from tests.proxy.cli.conftest import Cli


def test_doctor_passes_and_prints_a_client_config(cli: Cli, tmp_path: Path) -> None:
    out = cli("doctor", "-c", str(POLICIES / "python.yaml"), "--state", f"sqlite://{tmp_path}/state.db")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok    OPA: " in out.stdout and "(minimum supported v1.0.0" in out.stdout
    assert "ok    policy: " in out.stdout and "answers a probe call with a well-formed decision" in out.stdout
    assert "ok    state store: sqlite://" in out.stdout
    assert f"ok    audit log: {tmp_path}/state/regogate/python/audit.jsonl" in out.stdout
    snippet = out.stdout.split("replace the server command):\n", 1)[1].rsplit("\n\nall checks passed", 1)[0]
    entry = json.loads(snippet)["mcpServers"]["python"]
    assert entry["env"]["REGOGATE_OPA"] == str(Path(cli.env["REGOGATE_OPA"]).resolve())
    assert entry["args"][:2] == ["-c", str(POLICIES / "python.yaml")]


def test_doctor_without_opa_fails_and_says_how_to_get_it(cli: Cli) -> None:
    out = cli("doctor", env={"REGOGATE_OPA": "", "PATH": "/usr/bin:/bin", "REGOGATE_CACHE": str(cli.tmp)})
    assert out.returncode == 1
    assert "FAIL  OPA: no OPA binary found" in out.stdout
    assert "go install github.com/open-policy-agent/opa@v" in out.stdout and "brew install opa" in out.stdout


def test_doctor_fails_on_an_invalid_policy_and_an_unwritable_audit_path(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text('version: "1"\ntools:\n  a: {rules: [{action: nope}]}\n', encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    out = cli("doctor", "-c", str(policy), "--audit-log", str(locked / "sub" / "audit.jsonl"))
    assert out.returncode == 1
    assert "FAIL  policy: 1 problem(s):" in out.stdout and "bad.yaml:3:" in out.stdout
    if os.geteuid() != 0:  # root writes anywhere
        assert "FAIL  audit log:" in out.stdout


def test_doctor_fails_when_the_store_is_unreachable(cli: Cli) -> None:
    out = cli("doctor", "--state", "redis://127.0.0.1:1/0")
    assert out.returncode == 1
    assert "FAIL  state store: redis://127.0.0.1:1/0:" in out.stdout


def test_doctor_fails_when_the_decision_path_answers_nothing(cli: Cli) -> None:
    out = cli("doctor", "-c", str(POLICIES / "python.yaml"), "--opa-path", "regogate/gate/nope")
    assert out.returncode == 1
    assert "FAIL  policy: data.regogate.gate.nope is undefined for a probe tools/call" in out.stdout
