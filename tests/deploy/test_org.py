"""The organisation setup: signed bundles from nginx, decision logs shipped to a collector.

OPA's arguments come from ``docker-compose config`` with deploy/compose.org.yml (deploy/opa/org.yaml).
Bundles are signed by ``regogate convert --signing-key`` (the real ``opa sign``), and a tampered one is
refused while the previous revision keeps deciding.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import anyio
import pytest

from regogate.converters import Bundle, sign_bundle
from tests.conftest import POLICIES
from tests.deploy.conftest import (
    BUNDLE_NAMES,
    DEPLOY,
    BundleServer,
    Collector,
    SigningKeys,
    audit_events,
    compose_opa,
    fast_polling,
    publish_all,
    python_bundle,
    python_policy,
)
from tests.e2e.harness import REGOGATE, STANDIN, gated_session, text
from tests.opa_server import Mode, opa_server

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 30
#: OPA polls every second and ships decision logs every second here.
CHANGE_TIMEOUT = 10
POLL = 0.1
POLICY_REGO = "regogate/policies/python/policy.rego"


def org_opa_args(keys: SigningKeys, collector: Collector) -> list[str]:
    args = compose_opa(
        ["docker-compose.yml", "deploy/compose.org.yml"],
        {"REGOGATE_LOG_COLLECTOR": collector.url},
        volumes={"/etc/regogate/opa": DEPLOY / "opa", "/etc/regogate/keys": keys.public.parent},
    )
    reporting = ["--set", "decision_logs.reporting.min_delay_seconds=1"]
    reporting += ["--set", "decision_logs.reporting.max_delay_seconds=1"]
    return [*args, *fast_polling(), *reporting]


def tampered(bundle: Bundle) -> Bundle:
    """The signed bundle with its policy edited after signing: black is allowed again."""
    rego = bundle.files[POLICY_REGO].decode()
    assert "black is frozen for the release" in rego
    edited = rego.replace('input.tool.name == "black"', 'input.tool.name == "black-tampered"')
    assert edited != rego
    return Bundle(files={**bundle.files, POLICY_REGO: edited.encode()}, revision=bundle.revision)


async def test_signed_bundles_verify_a_tampered_one_is_refused_and_decisions_reach_the_collector(
    tmp_path: Path,
    bundle_server: BundleServer,
    signing_keys: SigningKeys,
    collector: Collector,
    opa_bin: str,
    opa_mode: Mode,
) -> None:
    v1 = python_policy(tmp_path)
    first = publish_all(bundle_server, v1, keys=signing_keys, opa_bin=opa_bin)
    second = sign_bundle(
        python_bundle(python_policy(tmp_path, frozen_black=True)), opa_bin=opa_bin, signing_key=signing_keys.private
    )
    audit = tmp_path / "audit.jsonl"
    env = {"REGOGATE_BUNDLE_SERVER": bundle_server.url, "REGOGATE_LOG_COLLECTOR": collector.url}
    mounts = [DEPLOY / "opa", signing_keys.public.parent]
    with opa_server(org_opa_args(signing_keys, collector), mounts=mounts, env=env, mode=opa_mode) as opa:
        assert opa.revisions() == {name: first[name].revision for name in BUNDLE_NAMES}
        with anyio.fail_after(SESSION_TIMEOUT):
            async with gated_session(v1, STANDIN, "--opa-url", opa.url, "--audit-log", str(audit)) as session:
                allowed = await session.call_tool("black", {"path": "."})
                refusals = opa.logs().count("Bundle load failed")
                bundle_server.publish("python", tampered(second))
                with anyio.fail_after(CHANGE_TIMEOUT):
                    while opa.logs().count("Bundle load failed") == refusals:
                        await anyio.sleep(POLL)
                kept = opa.revisions()["python"]
                still_allowed = await session.call_tool("black", {"path": "."})
                bundle_server.publish("python", second)
                with anyio.fail_after(CHANGE_TIMEOUT):
                    while not (denied := await session.call_tool("black", {"path": "."})).is_error:
                        await anyio.sleep(POLL)
                decisions = [e for e in audit_events(audit) if e["event"] == "decision"]
                with anyio.fail_after(CHANGE_TIMEOUT):
                    while not {d["decision_id"] for d in decisions} <= {e["decision_id"] for e in collector.received()}:
                        await anyio.sleep(POLL)
        refusal = [line for line in opa.logs().splitlines() if "Bundle load failed" in line][-1]
    assert not allowed.is_error and not still_allowed.is_error
    assert kept == first["python"].revision
    assert '"name":"python"' in refusal and "digest mismatch" in refusal.lower()
    assert text(denied) == "[POLICY DENIED] black is frozen for the release"
    shipped = {e["decision_id"]: e for e in collector.received()}
    for decision in decisions:
        event = shipped[decision["decision_id"]]
        assert "arguments" not in event["input"]["tool"]
        assert event["input"]["tool"]["arguments_hash"] == decision["args_hash"]
    # OPA's event names the exact revision; the audit's stamp is the one regogate last read (each second).
    assert shipped[decisions[0]["decision_id"]]["bundles"]["python"]["revision"] == first["python"].revision
    assert decisions[0]["revisions"]["python"] == first["python"].revision
    assert shipped[decisions[-1]["decision_id"]]["bundles"]["python"]["revision"] == second.revision


def test_convert_signing_key_makes_a_bundle_opa_verifies_and_a_tampered_copy_is_refused(
    tmp_path: Path, signing_keys: SigningKeys, opa_bin: str, opa_mode: Mode
) -> None:
    signed = tmp_path / "python.tar.gz"
    convert = [REGOGATE, "convert", "-c", str(POLICIES / "python.yaml"), "-o", str(signed), "--opa-bin", opa_bin]
    out = subprocess.run(
        [*convert, "--signing-key", str(signing_keys.private)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "signed RS256" in out.stdout
    with tarfile.open(signed) as tar:
        assert ".signatures.json" in tar.getnames()
    verify = ["--bundle", str(signed), "--verification-key", str(signing_keys.public)]
    with opa_server(verify, mounts=[tmp_path, signing_keys.public.parent], mode=opa_mode) as opa:
        assert opa.revisions()[str(signed)]
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(signed) as source, tarfile.open(forged, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member)
            assert data is not None
            content = data.read()
            if member.name.endswith("policy.rego"):
                content = content.replace(b'"conda"', b'"conda-forged"')
                member.size = len(content)
            target.addfile(member, io.BytesIO(content))
    serve = [opa_bin, "run", "--server", "--addr", "127.0.0.1:0"]
    refused = subprocess.run(
        [*serve, "--bundle", str(forged), "--verification-key", str(signing_keys.public)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0
    assert "digest mismatch" in (refused.stdout + refused.stderr).lower()
