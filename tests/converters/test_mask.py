"""The decision-log mask: generated ``system.log`` Rego that passes OPA's gates and masks as --log-args says."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from regogate.converters import LOG_ARGS, generate_mask, mask_bundle, write_bundle
from regogate.proxy.cli._main import main
from regogate.proxy.policy._audit import argument_hash

CALL = {"command": "pytest -q", "packages": ["requests"], "token": "s3cret"}


def opa(opa_bin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([opa_bin, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("log_args", LOG_ARGS)
def test_mask_bundle_passes_fmt_strict_check_and_its_own_tests(tmp_path: Path, opa_bin: str, log_args: str) -> None:
    out = tmp_path / log_args
    write_bundle(mask_bundle(log_args), out)
    assert opa(opa_bin, "fmt", "--list", "--fail", str(out)).stdout == ""
    checked = opa(opa_bin, "check", "--strict", "--bundle", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = opa(opa_bin, "test", "--bundle", str(out), "--format", "json")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    results = json.loads(tested.stdout)
    assert len(results) >= 3 and all(r.get("fail") is not True for r in results)


@pytest.mark.parametrize(
    ("log_args", "expected_arguments"),
    [
        ("hash", {"sha256": argument_hash(CALL).removeprefix("sha256:")}),
        ("none", None),
        ("full", CALL),
    ],
)
def test_mask_applied_by_opa_to_a_decision_event(
    tmp_path: Path, opa_bin: str, log_args: str, expected_arguments: object
) -> None:
    """``opa eval`` of data.system.log.mask against a decision event, then the mask applied as OPA does."""
    write_bundle(mask_bundle(log_args), tmp_path / "mask")
    event = {
        "path": "regogate/gate/decision",
        "input": {"kind": "tools/call", "tool": {"name": "uv-run", "arguments": CALL}},
    }
    (tmp_path / "event.json").write_text(json.dumps(event), encoding="utf-8")
    evaluated = opa(
        opa_bin,
        "eval",
        "-f",
        "json",
        "-b",
        str(tmp_path / "mask"),
        "-i",
        str(tmp_path / "event.json"),
        "data.system.log",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    log = json.loads(evaluated.stdout)["result"][0]["expressions"][0]["value"]
    assert "drop" not in log  # a decision is never dropped
    arguments: object = CALL
    for op in log.get("mask", []):
        if isinstance(op, str):
            assert op == "/input/tool/arguments"
            arguments = None
        else:
            assert op["op"] == "upsert" and op["path"] == "/input/tool/arguments"
            arguments = op["value"]
    assert arguments == expected_arguments


def test_the_hash_is_the_audit_logs_args_hash() -> None:
    canonical = json.dumps(CALL, sort_keys=True, separators=(",", ":"))
    assert argument_hash(CALL) == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert "crypto.sha256(json.marshal(arguments))" in generate_mask("hash")


def test_mask_generation_is_deterministic_and_rejects_unknown_modes() -> None:
    assert mask_bundle("hash") == mask_bundle("hash")
    assert len({mask_bundle(m).revision for m in LOG_ARGS}) == 3
    manifest = mask_bundle("none").manifest
    assert manifest["roots"] == ["system/log", "system/log_test"]
    assert manifest["metadata"] == {"generator": "regogate 0.1.0", "log_args": "none"}
    with pytest.raises(ValueError, match="log_args must be one of hash, none, full"):
        generate_mask("partial")


def test_mask_bundle_command_writes_a_tarball(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mask.tar.gz"
    assert main(["mask-bundle", "--log-args", "none", "-o", str(out)]) == 0
    assert out.is_file() and (out.stat().st_mode & 0o777) == 0o644
    assert "package system.log, --log-args none" in capsys.readouterr().out
