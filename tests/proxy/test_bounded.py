"""The relay's view of the gateway: a decision that does not come in time is a denial, never a forward."""

from __future__ import annotations

import anyio
import pytest

from regogate.proxy.relay import CallContext
from regogate.proxy.relay._bounded import BoundedGateway
from tests.proxy.conftest import STEP, Gate

pytestmark = pytest.mark.anyio


def echo_call() -> CallContext:
    return CallContext(
        request_id=1, tool_name="echo", arguments={}, protocol_version=None, client_info={}, tool=None, meta={}
    )


async def test_a_decision_that_does_not_come_in_time_is_a_denial() -> None:
    gate = Gate(slow={"echo"})  # holds its decision until released: never, here
    bounded = BoundedGateway(gate, decision_timeout=0.2)
    with anyio.fail_after(STEP):
        verdict = await bounded.check(echo_call())
    assert not verdict.allowed and verdict.rule == "regogate/gateway_error"
    assert verdict.message == "policy decision failed"


async def test_a_decision_in_time_is_the_gateways() -> None:
    bounded = BoundedGateway(Gate(), decision_timeout=STEP)
    verdict = await bounded.check(echo_call())
    assert verdict.allowed and verdict.decision_id == "d1"
