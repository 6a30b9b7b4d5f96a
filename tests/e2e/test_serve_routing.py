"""`regogate serve` routes each answer to the POST that asked, by the id the relay matched, whatever its type.

The endpoint parses a POST once and hands that parse to the relay; the relay tells the session which
request each line answers. These pin what a client sees of that: ids that look alike but are not the
same (``1`` and ``"1"``, ``true``), ids a JavaScript reader cannot keep, line separators in ids, a
repeated id while the first is in flight, and bodies that are not one clean message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.serve_harness import HEADERS, INITIALIZE, serve
from tests.e2e.test_serve import TIMEOUT, policy_file

pytestmark = pytest.mark.anyio


def call(request_id: object, name: str, arguments: dict[str, object], token: object = None) -> dict[str, object]:
    params: dict[str, object] = {"name": name, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def test_answers_reach_the_post_that_asked_whatever_the_ids_type(tmp_path: Path) -> None:
    with serve(policy_file(tmp_path), "--state", "memory") as gw, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=30) as http:
            first = await http.post(gw.url, json=INITIALIZE, headers=HEADERS)
            session = {**HEADERS, "mcp-session-id": first.headers["mcp-session-id"]}
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(gw.url, json=initialized, headers=session)).status_code == 202
            # id 1 (an integer) runs for a while; its progress token is the string "1".
            long_call = call(1, "trigger-long-running-operation", {"duration": 3, "steps": 3}, token="1")
            events: list[dict[str, Any]] = []
            progressed = anyio.Event()

            async def long_running() -> None:
                async with http.stream("POST", gw.url, json=long_call, headers=session) as answer:
                    assert answer.headers["content-type"].startswith("text/event-stream")
                    async for line in answer.aiter_lines():
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))
                            progressed.set()

            async def post(message: object) -> httpx.Response:
                return await http.post(gw.url, content=json.dumps(message), headers=session)

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_running)
                await progressed.wait()
                # The string "1" is another request: answered at once, on its own POST.
                same_text = await post(call("1", "echo", {"message": "string one"}))
                assert same_text.status_code == 200
                assert same_text.json()["id"] == "1" and "string one" in same_text.text
                # The integer 1 is in flight: a second one is refused, and the first is not disturbed.
                again = await post(call(1, "echo", {"message": "again"}))
                assert again.status_code == 409
                # true and 1.0 are not 1 (nor ids at all).
                for odd in (True, 1.0):
                    refused = await post(call(odd, "echo", {"message": "odd"}))
                    assert refused.status_code == 400 and "id must be" in refused.json()["error"]["message"]
                # Integers a JavaScript reader keeps exactly are served; the next one is not.
                largest = await post(call(2**53 - 1, "echo", {"message": "big"}))
                assert largest.json()["id"] == 2**53 - 1 and "big" in largest.text
                beyond = await post(call(2**53, "echo", {"message": "big"}))
                assert beyond.status_code == 400
                # Line separators and an empty string in ids; a denial is routed like any answer.
                for odd_id in ("a\u2028b\u2029c", "", -7, 0):
                    denied = await post(call(odd_id, "echo", {"message": "SHOUT"}))
                    assert denied.status_code == 200
                    body = denied.json()
                    assert body["id"] == odd_id and type(body["id"]) is type(odd_id)
                    assert body["result"]["isError"] is True
                    assert b"\xe2\x80\xa8" not in denied.content  # written escaped, on one line
    answer = events[-1]
    assert answer["id"] == 1 and type(answer["id"]) is int and "result" in answer
    progress = [e for e in events if e.get("method") == "notifications/progress"]
    assert progress and all(e["params"]["progressToken"] == "1" for e in progress)
    assert all(e.get("id") != "1" for e in events)


async def test_bodies_that_are_not_one_clean_message_are_refused_and_the_session_goes_on(tmp_path: Path) -> None:
    with serve(policy_file(tmp_path), "--state", "memory") as gw, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=30) as http:
            first = await http.post(gw.url, json=INITIALIZE, headers=HEADERS)
            session = {**HEADERS, "mcp-session-id": first.headers["mcp-session-id"]}
            bodies = {
                b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"\xff"}}}': (
                    -32700
                ),
                b'{"jsonrpc":"2.0","id":10,"method":"ping"}\r{"jsonrpc":"2.0","id":11,"method":"ping"}': -32700,
                b'{"jsonrpc":"2.0","id":12,"method":"ping","params":{"a":1,"a":2}}': -32600,
                b'\xef\xbb\xbf{"jsonrpc":"2.0","id":13,"method":"ping"}': -32700,
                b'{"jsonrpc":"2.0","id":14,"method":"ping","params":{"a":1}\r}': -32600,
            }
            for body, code in bodies.items():
                refused = await http.post(gw.url, content=body, headers=session)
                assert refused.status_code == 400 and refused.json()["error"]["code"] == code, body
            # A body in two lines (a newline is JSON whitespace) is one message, forwarded in canonical form.
            two_lines = b'{"jsonrpc":"2.0",\n"id":15,\n"method":"ping"}\n'
            pinged = await http.post(gw.url, content=two_lines, headers=session)
            assert pinged.status_code == 200 and pinged.json() == {"jsonrpc": "2.0", "id": 15, "result": {}}
        assert "Traceback" not in gw.read_stderr(timeout=1.0)
