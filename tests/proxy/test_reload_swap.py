"""A policy reload is one swap: each call is decided wholly by the old policy or wholly by the new one.

Policy A allows ``pay`` when counter ``count.a`` is at least 1; policy B when ``count.b`` is. The store
holds a=0, b=1, so A denies ("A: a is zero") and B allows. A call decided by B's OPA with A's counter
reads sees no ``count.b`` (0) and is denied with B's message: the mix this test must never see.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from regogate.converters import Policy, gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.core import Window
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._embedded_opa import EmbeddedOpa
from regogate.proxy.policy._policy_gateway import GateSettings, PolicyGateway
from regogate.proxy.relay._gateway import CallContext, Verdict
from regogate.proxy.state import MemoryStore
from tests.proxy.opa_fixtures import FakeClock

pytestmark = pytest.mark.anyio
NOON = 1_795_521_600.0  # 2026-11-24T12:00:00Z
#: Starting a second OPA and switching to it; generous for a loaded 2-core machine.
RELOAD_TIMEOUT = 30

POLICY = """\
version: "1"
tools:
  count:
    rules:
      - name: count-{counter}
        conditions: [{{path: state.count.{counter}, op: gte, value: 0}}]
        state: {{counter: {counter}, window: day}}
  pay:
    rules:
      - name: needs-{counter}
        conditions: [{{path: state.count.{counter}, op: gte, value: 1}}]
        on_deny: "{label}: {counter} is zero"
"""
MIXED = "B: b is zero"


class HeldStore(MemoryStore):
    """count.a = 0 and count.b = 1; the first counter read waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = anyio.Event()
        self.go_on = anyio.Event()

    async def current(self, key: str, window: Window, now: float) -> float:
        if not self.reading.is_set():
            self.reading.set()
            await self.go_on.wait()
        return 1.0 if key.endswith("count/b") else 0.0


def bundles(tmp_path: Path, label: str, counter: str) -> tuple[Policy, list[Path]]:
    source = tmp_path / f"{label}.yaml"
    source.write_text(POLICY.format(label=label, counter=counter), encoding="utf-8")
    policy = load_policy(source, server_id="shop")
    write_bundle(policy_bundle(policy, source.read_text(encoding="utf-8")), tmp_path / label / "policy")
    write_bundle(gate_bundle(), tmp_path / label / "gate")
    return policy, [tmp_path / label / "gate", tmp_path / label / "policy"]


def pay(request_id: int) -> CallContext:
    return CallContext(request_id=request_id, tool_name="pay", arguments={}, protocol_version="2025-11-25")


def outcome(verdict: Verdict) -> str:
    return "allowed" if verdict.allowed else verdict.message


async def test_calls_around_a_reload_see_one_policy_whole(tmp_path: Path) -> None:
    policy_a, dirs_a = bundles(tmp_path, "A", "a")
    policy_b, dirs_b = bundles(tmp_path, "B", "b")
    store = HeldStore()
    clock = FakeClock(NOON)
    switched = anyio.Event()
    verdicts: dict[str, Verdict] = {}
    async with EmbeddedOpa(dirs_a) as opa:
        gateway = PolicyGateway(
            opa.client, store, clock, AuditLog(None, clock), GateSettings(server_id="shop"), policy=policy_a
        )

        async def swap(switch: Callable[[], None]) -> None:
            def on_switch() -> None:
                switch()
                switched.set()

            await opa.reload(dirs_b, on_switch=on_switch)

        async def held_call() -> None:
            verdicts["held"] = await gateway.check_call(pay(1))

        with anyio.fail_after(RELOAD_TIMEOUT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(held_call)
                await store.reading.wait()  # the call has read-or-is-reading A's counters
                tg.start_soon(gateway.reload, policy_b, swap)
                await switched.wait()  # new calls now go to B's OPA
                verdicts["after switch"] = await gateway.check_call(pay(2))
                store.go_on.set()
        verdicts["after reload"] = await gateway.check_call(pay(3))

    seen = {name: outcome(v) for name, v in verdicts.items()}
    assert seen["held"] == "A: a is zero", seen  # started under A: A's counters, A's OPA
    assert seen["after switch"] == "allowed", seen  # started under B: B's counters, B's OPA
    assert seen["after reload"] == "allowed", seen
    assert MIXED not in seen.values()
