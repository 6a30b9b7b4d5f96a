"""Conversion: deterministic bundles whose Rego passes OPA's own gates and composes in one OPA."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.proxy.cli._main import main
from tests.conftest import POLICIES

GOLDEN = Path(__file__).parent / "golden"
NAMES = ["python", "github", "stripe", "filesystem"]


def bundle_for(name: str, **kwargs: str):  # type: ignore[no-untyped-def]
    path = POLICIES / f"{name}.yaml"
    policy = load_policy(path, source=f"policies/{name}.yaml", **kwargs)
    return policy_bundle(policy, path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", NAMES)
def test_generated_rego_matches_the_golden_files(name: str) -> None:
    bundle = bundle_for(name)
    rewritten = []
    for file, content in bundle.files.items():
        golden = GOLDEN / name / file
        same = golden.is_file() and golden.read_bytes() == content
        if os.environ.get("REGOGATE_UPDATE_GOLDEN"):
            if not same:
                golden.parent.mkdir(parents=True, exist_ok=True)
                golden.write_bytes(content)
                rewritten.append(file)
            continue
        assert same, f"{file} changed; rerun with REGOGATE_UPDATE_GOLDEN=1 and review"
    # Update mode compares before it writes, and a rewrite fails: a golden file never passes by matching itself.
    assert not rewritten, f"rewrote {rewritten}; review the diff and rerun without REGOGATE_UPDATE_GOLDEN"


def test_converting_twice_is_byte_identical(tmp_path: Path) -> None:
    for attempt in ("a", "b"):
        assert main(["convert", "-c", str(POLICIES / "github.yaml"), "-o", str(tmp_path / f"{attempt}.tar.gz")]) == 0
        assert main(["convert", "-c", str(POLICIES / "github.yaml"), "-o", str(tmp_path / attempt)]) == 0
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)


def test_manifest_names_roots_revision_and_source() -> None:
    bundle = bundle_for("python")
    manifest = bundle.manifest
    assert manifest["roots"] == ["regogate/policies/python", "regogate/policies/python_test"]
    assert manifest["rego_version"] == 1
    assert manifest["revision"] == bundle.revision and len(bundle.revision) == 32
    assert manifest["metadata"] == {
        "generator": "regogate 0.1.0",
        "source": "policies/python.yaml",
        "server_id": "python",
    }
    assert bundle_for("python", server_id="pyserver").revision != bundle.revision


def test_the_bundle_a_running_opa_loads_leaves_out_the_tests_only(tmp_path: Path) -> None:
    policy = POLICIES / "python.yaml"
    full = bundle_for("python")
    lean = policy_bundle(
        load_policy(policy, source="policies/python.yaml"), policy.read_text(encoding="utf-8"), tests=False
    )
    assert lean.revision == full.revision and lean.manifest == full.manifest  # audit and status name the same revision
    assert set(full.files) - set(lean.files) == {"regogate/policies/python/policy_test.rego"}
    assert all(lean.files[name] == full.files[name] for name in lean.files)
    assert [n for n in gate_bundle().files if n.endswith("_test.rego")] and not [
        n for n in gate_bundle(tests=False).files if n.endswith("_test.rego")
    ]
    # What `regogate run` and `serve` hand to their OPA: converted and gate Rego, no test file.
    from regogate.proxy.cli._reload import PolicySource
    from regogate.proxy.cli._run_config import parse_args

    source = PolicySource(parse_args(["-c", str(policy), "--", "true"]), tmp_path)
    written = [p.name for d in source.build() for p in d.rglob("*.rego")]
    assert sorted(written) == ["gate.rego", "policy.rego"]


def test_each_yaml_rule_carries_its_name_and_source_line() -> None:
    rego = bundle_for("github").files["regogate/policies/github/policy.rego"].decode()
    assert "# title: no-force-push\n" in rego
    assert "#   source: policies/github.yaml:36\n" in rego
    assert (
        'deny contains {"order": 6, "rule": "no-force-push", "message": "Force pushes are blocked by policy"}' in rego
    )


def test_a_failed_write_leaves_the_previous_bundle_in_place(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    write_bundle(bundle_for("python"), out)
    before = sorted(p.name for p in out.rglob("*"))
    (tmp_path / "bad.yaml").write_text('version: "1"\ntools:\n  a: {rules: [{action: nope}]}\n', encoding="utf-8")
    assert main(["convert", "-c", str(tmp_path / "bad.yaml"), "-o", str(out)]) == 1
    assert sorted(p.name for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_tarball_is_a_standard_opa_bundle(tmp_path: Path, opa_bin: str) -> None:
    write_bundle(bundle_for("stripe"), tmp_path / "stripe.tar.gz")
    with tarfile.open(tmp_path / "stripe.tar.gz") as tar:
        assert sorted(tar.getnames()) == [
            ".manifest",
            "regogate/policies/stripe/policy.rego",
            "regogate/policies/stripe/policy_test.rego",
        ]
    out = subprocess.run(
        [opa_bin, "inspect", "--format", "json", str(tmp_path / "stripe.tar.gz")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["manifest"]["revision"] == bundle_for("stripe").revision


@pytest.fixture(scope="module")
def all_bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("bundles")
    dirs = []
    for name in NAMES:
        write_bundle(bundle_for(name), base / name)
        dirs.append(base / name)
    write_bundle(gate_bundle(), base / "gate")
    dirs.append(base / "gate")
    return dirs


def test_generated_rego_is_fmt_and_strict_check_clean(all_bundles: list[Path], opa_bin: str) -> None:
    fmt = subprocess.run([opa_bin, "fmt", "--list", "--fail", *map(str, all_bundles)], capture_output=True, text=True)
    assert fmt.returncode == 0 and fmt.stdout == "", fmt.stdout + fmt.stderr
    args = [a for d in all_bundles for a in ("-b", str(d))]
    check = subprocess.run([opa_bin, "check", "--strict", *args], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_generated_tests_pass_for_every_policy_loaded_together(all_bundles: list[Path], opa_bin: str) -> None:
    args = [a for d in all_bundles for a in ("-b", str(d))]
    result = subprocess.run([opa_bin, "test", "--format", "json", *args], capture_output=True, text=True)
    outcomes = json.loads(result.stdout)
    failed = [t["name"] for t in outcomes if t.get("fail") or t.get("error")]
    assert failed == [] and result.returncode == 0
    names = {t["name"] for t in outcomes}
    # Each YAML rule gets its denying side, and its allowing side where it has one.
    assert {"test_no_force_push_denies", "test_no_force_push_allows"} <= names
    assert {"test_conda_0_denies", "test_conda_0_spares_other_tools", "test_uv_run_0_declares_its_limit"} <= names
    assert "test_daily_charge_volume_declares_its_limit" in names
