"""The policy gateway against a real embedded OPA: counters, faults, fail modes, decision ids."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.core import StateError
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._embedded_opa import EmbeddedOpa
from regogate.proxy.policy._opa_client import OpaClient
from regogate.proxy.policy._policy_gateway import FailMode, GateSettings, PolicyGateway
from regogate.proxy.relay._gateway import CallContext
from regogate.proxy.state import MemoryStore, Reservation, ReserveResult, Window
from tests.conftest import POLICIES
from tests.proxy.opa_fixtures import FakeClock, FaultTransport

pytestmark = pytest.mark.anyio
NOON = 1_795_521_600.0  # 2026-11-24T12:00:00Z


class BrokenStore(MemoryStore):
    """A store whose backend is down: every operation fails as a real outage would."""

    async def reserve(self, items: Sequence[Reservation], now: float) -> ReserveResult:
        raise StateError("redis://10.0.0.1:6379 is unreachable")

    async def current(self, key: str, window: Window, now: float) -> float:
        raise StateError("redis://10.0.0.1:6379 is unreachable")


def call(tool: str, arguments: dict[str, object] | None = None, request_id: int = 1) -> CallContext:
    return CallContext(
        request_id=request_id,
        tool_name=tool,
        arguments=arguments or {},
        protocol_version="2025-11-25",
        tool={"name": tool, "inputSchema": {"type": "object"}},
    )


@asynccontextmanager
async def gateway_for(
    tmp_path: Path,
    name: str,
    *,
    store: MemoryStore | None = None,
    fail_mode: FailMode = "closed",
    state_fail_mode: FailMode = "closed",
    dry_run: bool = False,
    decision_logs: bool = False,
) -> AsyncIterator[tuple[PolicyGateway, Path]]:
    policy = load_policy(POLICIES / f"{name}.yaml")
    write_bundle(policy_bundle(policy, (POLICIES / f"{name}.yaml").read_text(encoding="utf-8")), tmp_path / "p")
    write_bundle(gate_bundle(), tmp_path / "gate")
    audit_path = tmp_path / "audit.jsonl"
    clock = FakeClock(NOON)
    audit = AuditLog(str(audit_path), clock)
    async with EmbeddedOpa([tmp_path / "gate", tmp_path / "p"], decision_logs=decision_logs) as opa:
        settings = GateSettings(server_id=name, fail_mode=fail_mode, state_fail_mode=state_fail_mode, dry_run=dry_run)
        yield (
            PolicyGateway(opa.client, store or MemoryStore(), clock, audit, settings, policy=policy),
            audit_path,
        )
    audit.close()


async def test_conditions_read_other_tools_counters_from_the_store(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "stripe") as (gateway, _):
        refund: dict[str, object] = {"metadata": {"reason": "duplicate"}}
        early = await gateway.check_call(call("create_refund", refund))
        assert (early.allowed, early.message) == (False, "Refunds need a charge today")
        charge = await gateway.check_call(call("create_charge", {"amount": 2500, "currency": "usd"}))
        assert charge.allowed
        await gateway.settle(charge, succeeded=True)
        later = await gateway.check_call(call("create_refund", refund))
        assert later.allowed


async def test_increment_from_counts_the_argument_and_refuses_past_the_limit(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "stripe") as (gateway, _):
        verdicts = [
            await gateway.check_call(call("create_charge", {"amount": 50000, "currency": "eur"})) for _ in range(21)
        ]
    assert [v.allowed for v in verdicts] == [True] * 20 + [False]  # 20 x 500.00 = 10,000.00 a day
    assert verdicts[-1].message == "Daily charge volume of 10,000.00 reached"


async def test_store_outage_denies_calls_that_need_counters_and_spares_the_rest(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "filesystem", store=BrokenStore()) as (gateway, audit):
        read = await gateway.check_call(call("read_file", {"path": "/x"}))
        write = await gateway.check_call(call("write_file", {"path": "/x.txt", "content": "x"}))
    assert read.allowed
    assert not write.allowed
    # The model reads a neutral reason; the details (which may name hosts) go to the audit log only.
    assert write.message == "policy check unavailable (state_error)"
    assert write.rule == "regogate.state_error"
    events = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [e["allow"] for e in events] == [True, False]
    assert events[1]["detail"] == "redis://10.0.0.1:6379 is unreachable"


async def test_opa_unreachable_denies_unless_fail_open(tmp_path: Path) -> None:
    settings_closed = GateSettings(server_id="python")
    settings_open = GateSettings(server_id="python", fail_mode="open")
    clock = FakeClock(NOON)
    audit = AuditLog(None, clock)
    async with OpaClient(f"unix://{tmp_path}/nobody.sock", timeout=1) as client:
        closed = await PolicyGateway(client, MemoryStore(), clock, audit, settings_closed).check_call(call("black"))
        opened = await PolicyGateway(client, MemoryStore(), clock, audit, settings_open).check_call(call("black"))
    assert not closed.allowed and closed.message == "policy check unavailable (opa_unreachable)"
    assert opened.allowed


async def test_tools_list_is_hidden_entirely_when_opa_fails(tmp_path: Path) -> None:
    clock = FakeClock(NOON)
    async with OpaClient(f"unix://{tmp_path}/nobody.sock", timeout=1) as client:
        gateway = PolicyGateway(client, MemoryStore(), clock, AuditLog(None, clock), GateSettings(server_id="x"))
        hidden = await gateway.hidden_tools([{"name": "a"}, {"name": "b"}])
    assert hidden == {"a", "b"}


async def test_dry_run_forwards_a_call_over_its_limit_without_counting_it(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "filesystem", dry_run=True) as (gateway, audit):
        verdicts = []
        for i in range(6):
            verdict = await gateway.check_call(call("write_file", {"path": f"/f{i}.txt", "content": "x"}, i))
            await gateway.settle(verdict, succeeded=True)
            verdicts.append(verdict)
    assert all(v.allowed for v in verdicts)
    events = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines() if '"decision"' in line]
    assert [e["limit"] for e in events][-1] == "refused" and events[-1]["allow"] is False


async def test_rollback_returns_the_quota(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "filesystem") as (gateway, _):
        for i in range(5):
            verdict = await gateway.check_call(call("write_file", {"path": f"/f{i}.txt", "content": "x"}, i))
            await gateway.settle(verdict, succeeded=i != 0)  # the first write failed upstream
        sixth = await gateway.check_call(call("write_file", {"path": "/f.txt", "content": "x"}, 9))
        seventh = await gateway.check_call(call("write_file", {"path": "/g.txt", "content": "x"}, 10))
    assert sixth.allowed and not seventh.allowed
    assert seventh.message == "At most 5 writes a minute"


async def test_decision_ids_come_from_opa_when_decision_logs_are_on(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "python", decision_logs=True) as (gateway, audit):
        verdict = await gateway.check_call(call("conda", {"command": "list"}))
    event = json.loads(audit.read_text(encoding="utf-8").splitlines()[0])
    assert event["decision_id"] == verdict.decision_id
    assert len(verdict.decision_id) == 36  # OPA's UUID, with dashes; our own ids have none


async def test_concurrent_calls_never_admit_more_than_the_limit(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "filesystem") as (gateway, _):
        results: list[bool] = []

        async def one(i: int) -> None:
            verdict = await gateway.check_call(call("create_directory", {"path": f"/d{i}"}, i))
            results.append(verdict.allowed)

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(one, i)
    assert results.count(True) == 10  # directory-budget: 10/minute


async def test_state_fail_open_admits_uncounted_and_opa_faults_stay_closed(tmp_path: Path) -> None:
    async with gateway_for(tmp_path, "filesystem", store=BrokenStore(), state_fail_mode="open") as (gateway, audit):
        write = await gateway.check_call(call("write_file", {"path": "/x.txt", "content": "x"}))
        bad = await gateway.check_call(call("write_file", {"path": "/x.sh", "content": "x"}))
    clock = FakeClock(NOON)
    settings = GateSettings(server_id="filesystem", state_fail_mode="open")
    async with OpaClient("http://opa.invalid", transport=FaultTransport(500, b"{}")) as broken:
        gateway = PolicyGateway(broken, BrokenStore(), clock, AuditLog(None, clock), settings)
        faulted = await gateway.check_call(call("write_file", {"path": "/x.txt", "content": "x"}))
    assert write.allowed
    assert not bad.allowed  # the policy still decides; only counting is skipped
    event = json.loads(audit.read_text(encoding="utf-8").splitlines()[0])
    assert event["limit"] == "uncounted"
    # An OPA fault is not a store fault: --state-fail-mode open leaves it denied.
    assert not faulted.allowed and faulted.rule == "regogate.opa_error"
