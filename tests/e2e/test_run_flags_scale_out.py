"""``regogate run``'s flags for shared deployments: documented, and contradictions refused in one line."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import POLICIES
from tests.e2e.harness import REGOGATE


def test_help_documents_the_deployment_flags() -> None:
    out = subprocess.run([REGOGATE, "run", "--help"], capture_output=True, text=True, timeout=30)
    for flag in ("--opa-ready-timeout", "--decision-log", "GET /health?bundles"):
        assert flag in out.stdout
    assert "--decision-log /var/log/regogate/opa-decisions.jsonl" in out.stdout


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--opa-url", "http://127.0.0.1:8181", "--decision-log", "d.jsonl"], "--decision-log is for the embedded OPA"),
        (["--opa-ready-timeout", "0"], "--opa-ready-timeout must be positive"),
    ],
)
def test_contradictory_deployment_flags_are_one_line_and_exit_2(flags: list[str], expected: str) -> None:
    out = subprocess.run(
        [REGOGATE, "-c", str(POLICIES / "python.yaml"), *flags, "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert expected in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_mask_bundle_is_listed_in_the_top_level_help() -> None:
    out = subprocess.run([REGOGATE, "--help"], capture_output=True, text=True, timeout=30)
    assert "mask-bundle" in out.stdout and "regogate mask-bundle --log-args hash" in out.stdout
