"""The relay asking the client's user on the gateway's behalf (elicitation for approvals): answers never go
upstream, forged ones are dropped, a cancelled call withdraws its question, clients without the capability
are never asked."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
import pytest

from regogate.proxy.relay._gateway import CallContext, Verdict
from tests.proxy.conftest import Gate, Pipes

pytestmark = pytest.mark.anyio

RelayOnPipes = Callable[..., AbstractAsyncContextManager[Pipes]]
FORM: dict[str, object] = {"elicitation": {"form": {}}}


class AskingGate(Gate):
    """Asks the user about every call it can, and allows it only on an accepted yes."""

    answers: list[dict[str, object] | None]
    asked: anyio.Event

    def __init__(self) -> None:
        super().__init__()
        self.answers = []
        self.asked = anyio.Event()

    async def check_call(self, call: CallContext) -> Verdict:
        self.calls.append(call)
        if call.elicit is None:
            return Verdict(False, "cannot ask", "ask", "d-none")
        self.asked.set()
        answer = await call.elicit({"mode": "form", "message": "ok?", "requestedSchema": {}}, 5)
        self.answers.append(answer)
        content = answer.get("content") if answer else None
        allowed = isinstance(content, dict) and content.get("approve") is True
        return Verdict(allowed, "" if allowed else "not approved", "ask", "d-ask")


def call(request_id: object, **meta: object) -> dict[str, object]:
    params: dict[str, object] = {"name": "echo", "arguments": {}}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def test_an_accepted_form_lets_the_call_go_and_the_answer_never_reaches_the_server(
    relay_on_pipes: RelayOnPipes,
) -> None:
    gate = AskingGate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake(capabilities=FORM)
        await pipes.list_tools("echo")
        await pipes.from_client(call(1))
        ask = await pipes.to_client()
        assert ask["method"] == "elicitation/create" and str(ask["id"]).startswith("regogate-ask-")
        await pipes.from_client({"jsonrpc": "2.0", "id": "regogate-ask-forged", "result": {"action": "accept"}})
        await pipes.from_client(
            {"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"approve": True}}}
        )
        forwarded = await pipes.to_upstream()
        assert forwarded["method"] == "tools/call" and forwarded["id"] == 1  # nothing of the answers went up
        late = {"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"approve": True}}}
        await pipes.from_client(late)  # answered already: dropped
        await pipes.from_client({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert (await pipes.to_upstream())["id"] == 2
    assert gate.answers == [{"action": "accept", "content": {"approve": True}}]


async def test_cancelling_the_call_withdraws_the_question_and_the_call(relay_on_pipes: RelayOnPipes) -> None:
    gate = AskingGate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake(capabilities={"elicitation": {}})  # an empty object means form mode
        await pipes.list_tools("echo")
        await pipes.from_client(call(3, progressToken="p3"))
        ask = await pipes.to_client()
        assert ask["method"] == "elicitation/create"
        await pipes.from_client({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}})
        withdrawn = await pipes.to_client()
        assert withdrawn["method"] == "notifications/cancelled"
        assert withdrawn["params"] == {"requestId": ask["id"], "reason": "the call was cancelled"}
        await pipes.from_client({"jsonrpc": "2.0", "id": 4, "method": "ping"})
        assert (await pipes.to_upstream())["id"] == 4  # the cancelled call never went up
    assert gate.answers == [None]


@pytest.mark.parametrize("capabilities", [{}, {"elicitation": {"url": {}}}, {"elicitation": True}])
async def test_clients_without_form_elicitation_are_never_asked(
    relay_on_pipes: RelayOnPipes, capabilities: dict[str, object]
) -> None:
    gate = AskingGate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake(capabilities=capabilities)
        await pipes.list_tools("echo")
        await pipes.from_client(call(5))
        denied = await pipes.to_client()
    assert denied["id"] == 5 and denied["result"]["isError"] is True  # type: ignore[index]
    assert gate.calls[0].elicit is None
