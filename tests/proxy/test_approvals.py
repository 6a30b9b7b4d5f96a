"""Human approval through the policy gateway and a real OPA: out of band with `regogate approvals`, in band
through an elicitation callback, single use, binding, and OPA keeping the last word."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.proxy.approval import ApprovalStore, open_approval_store
from regogate.proxy.policy._approvals import ApprovalDesk
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._embedded_opa import EmbeddedOpa
from regogate.proxy.policy._policy_gateway import GateSettings, PolicyGateway
from regogate.proxy.relay._gateway import CallContext, Elicit
from regogate.proxy.state import MemoryStore
from tests.conftest import POLICIES
from tests.proxy.opa_fixtures import FakeClock
from tests.proxy.opa_fixtures import write_bundle as write_files
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio
SERVER = "python"
CONDA: dict[str, object] = {"command": "remove", "packages": ["numpy"]}

# An extension that refuses approvals given by anyone but "ana": OPA keeps the last word.
ONLY_ANA = """package regogate.extensions.only_ana

deny contains {"rule": "only-ana", "message": "only ana may approve destructive calls"} if {
	input.approval
	input.approval.by != "ana"
}
"""


def call(arguments: dict[str, object] = CONDA, *, elicit: Elicit | None = None, tool: str = "conda") -> CallContext:
    return CallContext(
        request_id=1,
        tool_name=tool,
        arguments=arguments,
        protocol_version="2025-11-25",
        client_info={"name": "test-client"},
        tool={"name": tool, "inputSchema": {"type": "object"}},
        elicit=elicit,
    )


@asynccontextmanager
async def approval_gateway(
    tmp_path: Path, spec: str, *, extension: bool = False
) -> AsyncIterator[tuple[PolicyGateway, ApprovalStore, FakeClock, Path]]:
    source = POLICIES / "python-approval.yaml"
    policy = load_policy(source, server_id=SERVER)
    write_bundle(policy_bundle(policy, source.read_text(encoding="utf-8")), tmp_path / "p")
    write_bundle(gate_bundle(), tmp_path / "gate")
    bundles = [tmp_path / "gate", tmp_path / "p"]
    if extension:
        manifest = json.dumps({"roots": ["regogate/extensions/only_ana"]})
        bundles.append(write_files(tmp_path / "ext", {".manifest": manifest, "only_ana.rego": ONLY_ANA}))
    # The approvals command in another process reads the real clock, so the gateway's starts there too.
    clock = FakeClock(time.time())
    audit_path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(audit_path), clock)
    store = open_approval_store(spec, "")
    desk = ApprovalDesk(store, clock, audit, SERVER, state_flag=f"--state {spec}")
    try:
        async with EmbeddedOpa(bundles) as opa:
            settings = GateSettings(server_id=SERVER, principal={"id": "bo"})
            gateway = PolicyGateway(opa.client, MemoryStore(), clock, audit, settings, approvals=desk)
            yield gateway, store, clock, audit_path
    finally:
        await store.aclose()
        audit.close()


def approvals_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`regogate approvals …` in another process, as a person at another terminal runs it."""
    return subprocess.run(
        [sys.executable, "-m", "regogate.proxy.cli._main", "approvals", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pending_id(message: str) -> str:
    return message.split("Approval ", 1)[1].split(" ", 1)[0]


@pytest.mark.parametrize("backend", ["sqlite", "redis-local", "redis-container"])
async def test_out_of_band_approval_admits_the_same_call_exactly_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        spec = f"sqlite:///{tmp_path}/state.db"
    else:
        redis: RedisServer = request.getfixturevalue(backend.replace("-", "_"))
        spec = redis.url
    async with approval_gateway(tmp_path, spec) as (gateway, _, _, audit_path):
        first = await gateway.check_call(call())
        assert not first.allowed and first.rule == "conda-needs-approval"
        assert "a person must approve it" in first.message and "regogate approvals approve apr-" in first.message
        approval_id = pending_id(first.message)
        again = await gateway.check_call(call())
        assert not again.allowed and pending_id(again.message) == approval_id  # one request per call

        shown = approvals_cli("show", approval_id, "--state", spec)
        assert shown.returncode == 0 and '"numpy"' in shown.stdout and "conda-needs-approval" in shown.stdout
        assert " by bo\n" in shown.stdout  # who made the call, for the person deciding
        listed = approvals_cli("list", "--state", spec)
        assert approval_id in listed.stdout and " by bo " in listed.stdout
        approved = approvals_cli("approve", approval_id, "--state", spec, "--by", "ana", "--reason", "checked")
        assert approved.returncode == 0, approved.stderr

        changed = await gateway.check_call(call({"command": "remove", "packages": ["scipy"]}))
        assert not changed.allowed and pending_id(changed.message) != approval_id  # arguments are bound
        admitted = await gateway.check_call(call())
        assert admitted.allowed
        used_up = await gateway.check_call(call())
        assert not used_up.allowed and pending_id(used_up.message) != approval_id

        twice = approvals_cli("approve", approval_id, "--state", spec)
        assert twice.returncode == 1 and "is used" in twice.stderr
        unknown = approvals_cli("deny", "apr-doesnotexist", "--state", spec)
        assert unknown.returncode == 1 and "no approval" in unknown.stderr

    events = [json.loads(line) for line in audit_path.read_text(encoding="utf-8").splitlines()]
    outcomes = [e["outcome"] for e in events if e["event"] == "approval" and e["approval_id"] == approval_id]
    assert outcomes == ["requested", "used"]
    decided = [e["allow"] for e in events if e["event"] == "decision" and e.get("approval_id") == approval_id]
    assert decided == [False, False, True]  # asked, asked again, then the approved call


async def test_a_denied_approval_never_runs_the_call(tmp_path: Path) -> None:
    spec = f"sqlite:///{tmp_path}/state.db"
    async with approval_gateway(tmp_path, spec) as (gateway, _, _, _):
        approval_id = pending_id((await gateway.check_call(call())).message)
        assert approvals_cli("deny", approval_id, "--state", spec, "--reason", "not today").returncode == 0
        assert not (await gateway.check_call(call())).allowed


async def test_opa_refuses_an_approved_call_when_the_policy_says_so(tmp_path: Path) -> None:
    spec = f"sqlite:///{tmp_path}/state.db"
    async with approval_gateway(tmp_path, spec, extension=True) as (gateway, store, clock, _):
        approval_id = pending_id((await gateway.check_call(call())).message)
        await store.answer(approval_id, approve=True, by="bo", reason=None, via="cli", now=clock.now())
        refused = await gateway.check_call(call())
        assert not refused.allowed and refused.rule == "only-ana"
        assert refused.message == "only ana may approve destructive calls"


@pytest.mark.parametrize(
    ("answer", "allowed", "said"),
    [
        ({"action": "accept", "content": {"approve": True, "reason": "fine"}}, True, ""),
        ({"action": "accept", "content": {"approve": False}}, False, "said no"),
        ({"action": "decline"}, False, "declined"),
        ({"action": "cancel"}, False, "cancelled"),
        (None, False, "did not answer in time"),
        ({"action": "accept", "content": {"approve": "yes"}}, False, "without a yes/no"),
        ({"action": "accept"}, False, "could not read"),
    ],
)
async def test_in_band_answers(tmp_path: Path, answer: dict[str, object] | None, allowed: bool, said: str) -> None:
    asked: list[dict[str, object]] = []

    async def elicit(params: dict[str, object], deadline: float) -> dict[str, object] | None:
        asked.append({**params, "deadline": deadline})
        return answer

    async with approval_gateway(tmp_path, "memory") as (gateway, _, _, _):
        verdict = await gateway.check_call(call(elicit=elicit))
    assert verdict.allowed is allowed
    assert said in verdict.message
    (form,) = asked
    assert form["mode"] == "form" and form["deadline"] == 300
    assert "conda" in str(form["message"]) and '"numpy"' in str(form["message"])
    assert form["requestedSchema"] == {
        "type": "object",
        "properties": {
            "approve": {"type": "boolean", "title": "Approve this call?", "description": "Yes lets the call run once."},
            "reason": {"type": "string", "title": "Reason (optional)"},
        },
        "required": ["approve"],
    }


async def test_without_a_shared_store_or_elicitation_the_denial_says_how_to_fix_it(tmp_path: Path) -> None:
    async with approval_gateway(tmp_path, "memory") as (gateway, _, _, _):
        verdict = await gateway.check_call(call())
    assert not verdict.allowed and "--state memory" in verdict.message


async def test_tools_without_approval_rules_are_untouched(tmp_path: Path) -> None:
    async with approval_gateway(tmp_path, f"sqlite:///{tmp_path}/state.db") as (gateway, _, _, _):
        assert (await gateway.check_call(call({}, tool="pip-list"))).allowed
