"""The decision-log mask: generated ``system.log`` Rego that passes OPA's gates and masks as --log-args says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from regogate.converters import LOG_ARGS, generate_mask, mask_bundle, write_bundle
from regogate.converters._mask import WITHHELD
from regogate.proxy.cli._main import main

CALL = {"command": "pytest -q", "packages": ["requests"], "token": "s3cret"}
DIGEST = "hmac-sha256:" + "ab" * 32


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


def _masked_event(tmp_path: Path, opa_bin: str, log_args: str, event: dict[str, Any]) -> dict[str, Any]:
    """``opa eval`` of data.system.log against a decision event, then the mask applied to it as OPA does."""
    write_bundle(mask_bundle(log_args), tmp_path / "mask")
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
    masked: dict[str, Any] = json.loads(json.dumps(event))
    for op in log.get("mask", []):
        pointer = op if isinstance(op, str) else op["path"]
        *parents, last = pointer.strip("/").split("/")
        target = masked
        for key in parents:
            target = target[key]
        if isinstance(op, str):
            del target[last]
        else:
            assert op["op"] == "upsert"
            target[last] = op["value"]
    return masked


@pytest.mark.parametrize("log_args", LOG_ARGS)
def test_mask_applied_by_opa_leaves_nothing_of_the_arguments_unless_full(
    tmp_path: Path, opa_bin: str, log_args: str
) -> None:
    event = {
        "path": "regogate/gate/decision",
        "input": {
            "kind": "tools/call",
            "tool": {"name": "pay", "arguments": {**CALL, "amount": 4821}, "arguments_hash": DIGEST},
        },
        "result": {
            "allow": False,
            "rate_limits": [
                {
                    "key": "pay/spend",
                    "limit": 10000,
                    "window": "day",
                    "cost": 4821,
                    "rule": "budget",
                    "message": "Over budget",
                }
            ],
            "reasons": [
                {"rule": "schema", "message": "argument token is invalid: must be a number"},
                {"rule": "budget", "message": "Over budget"},
            ],
        },
    }
    masked = _masked_event(tmp_path, opa_bin, log_args, event)
    if log_args == "full":
        assert masked == event
        return
    text = json.dumps(masked)
    assert "4821" not in text and "s3cret" not in text and "token" not in text and "pytest -q" not in text
    tool = masked["input"]["tool"]
    assert "arguments" not in tool
    assert tool.get("arguments_hash") == (DIGEST if log_args == "hash" else None)
    assert masked["result"]["rate_limits"] == [
        {"key": "pay/spend", "limit": 10000, "window": "day", "rule": "budget", "message": "Over budget"}
    ]
    assert masked["result"]["reasons"] == [
        {"rule": "schema", "message": WITHHELD},
        {"rule": "budget", "message": "Over budget"},
    ]


def test_the_mask_holds_no_key_the_hash_comes_from_regogate() -> None:
    for mode in LOG_ARGS:
        assert "crypto.hmac" not in generate_mask(mode) and "crypto.sha256" not in generate_mask(mode)


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
