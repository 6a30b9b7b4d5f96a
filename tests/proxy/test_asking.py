"""regogate's own requests to the client: answers matched by id, late and forged answers dropped, progress
while waiting, and a withdrawn call withdrawing its question."""

from __future__ import annotations

import json

import anyio
import pytest

from regogate.proxy.relay._asking import ASK_ID_PREFIX, ClientAsker

pytestmark = pytest.mark.anyio


class Client:
    """What the asker sent, and a way to answer it."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []
        self.arrived = anyio.Event()

    async def send(self, line: bytes) -> None:
        assert b"\n" not in line  # one message; the writer adds the newline
        self.sent.append(json.loads(line))
        self.arrived.set()


async def test_the_answer_with_the_requests_id_is_returned() -> None:
    client = Client()
    asker = ClientAsker(client.send)
    async with anyio.create_task_group() as tg:

        async def answer() -> None:
            await client.arrived.wait()
            request = client.sent[0]
            assert request["method"] == "elicitation/create" and str(request["id"]).startswith(ASK_ID_PREFIX)
            assert asker.claims(request["id"])
            asker.deliver({"jsonrpc": "2.0", "id": "regogate-ask-forged", "result": {"action": "accept"}})
            asker.deliver({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "decline"}})

        tg.start_soon(answer)
        with anyio.fail_after(5):
            result = await asker.ask("elicitation/create", {"message": "ok?"}, 5)
    assert result == {"action": "decline"}


async def test_no_answer_in_time_gives_none_and_tells_the_client() -> None:
    client = Client()
    asker = ClientAsker(client.send)
    with anyio.fail_after(5):
        assert await asker.ask("elicitation/create", {}, 0.3) is None
    request, cancelled = client.sent
    assert cancelled["method"] == "notifications/cancelled"
    assert cancelled["params"] == {"requestId": request["id"], "reason": "no answer in time"}
    asker.deliver({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept"}})  # late: dropped


async def test_an_error_answer_counts_as_no_answer() -> None:
    client = Client()
    asker = ClientAsker(client.send)
    async with anyio.create_task_group() as tg:

        async def answer() -> None:
            await client.arrived.wait()
            asker.deliver({"jsonrpc": "2.0", "id": client.sent[0]["id"], "error": {"code": -1, "message": "no"}})

        tg.start_soon(answer)
        with anyio.fail_after(5):
            assert await asker.ask("elicitation/create", {}, 5) is None


async def test_a_withdrawn_call_withdraws_its_question() -> None:
    client = Client()
    asker = ClientAsker(client.send)
    gone = False

    async def cancel_soon() -> None:
        nonlocal gone
        await client.arrived.wait()
        gone = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_soon)
        with anyio.fail_after(5):
            assert await asker.ask("elicitation/create", {}, 60, withdrawn=lambda: gone) is None
    assert client.sent[-1]["params"] == {"requestId": client.sent[0]["id"], "reason": "the call was cancelled"}


async def test_progress_notifications_keep_a_waiting_client_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("regogate.proxy.relay._asking.PROGRESS_INTERVAL", 0.1)
    monkeypatch.setattr("regogate.proxy.relay._asking.WITHDRAW_POLL", 0.02)
    client = Client()
    asker = ClientAsker(client.send)
    with anyio.fail_after(5):
        await asker.ask("elicitation/create", {}, 0.55, progress_token="tok-1")
    progress = [m for m in client.sent if m.get("method") == "notifications/progress"]
    assert len(progress) >= 3
    assert [p["params"]["progress"] for p in progress] == list(range(1, len(progress) + 1))  # type: ignore[index]
    assert all(p["params"]["progressToken"] == "tok-1" for p in progress)  # type: ignore[index]


def test_only_its_own_ids_are_claimed() -> None:
    asker = ClientAsker(Client().send)
    assert not asker.claims(7) and not asker.claims("7") and not asker.claims(None)
    assert asker.claims("regogate-ask-anything")
