"""`regogate serve` and 2026-07-28 clients, which have no session: each request is served on an upstream
lent for it, never shared between callers or between requests at once; and keep-alive comments on
event streams that stay silent.

The upstream is our SDK-built server over stdio (the published servers do not speak 2026-07-28); its
``count`` tool says how many calls that one process ran, which shows which upstream served a request.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import Client

from tests.conftest import alive
from tests.e2e.harness import SERVERS, children, command_line, text
from tests.e2e.serve_harness import HEADERS, Gateway, serve
from tests.e2e.test_serve_auth import Issuer

pytestmark = pytest.mark.anyio

TIMEOUT = 90  # one whole test; seconds, slack for a loaded CI machine
SDK_SERVER = (sys.executable, str(SERVERS / "http_server.py"), "--stdio", "--public-tools", "60000")
POLICY = """\
version: "1"
hide: [big]
tools:
  echo:
    rules:
      - name: lowercase-only
        conditions:
          - path: args.text
            op: regex
            value: "^[a-z ]*$"
        on_deny: "Only lowercase letters may be echoed"
"""
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
}


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def call(request_id: object, name: str, *, token: str | None = None, **arguments: Any) -> dict[str, Any]:
    meta = META if token is None else {**META, "progressToken": token}
    params = {"name": name, "arguments": arguments, "_meta": meta}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def upstreams(gw: Gateway) -> list[int]:
    return [pid for pid in children(gw.process.pid) if "http_server.py" in command_line(pid)]


def answer_text(response: httpx.Response) -> str:
    """The tool result's text, from a JSON answer or the last event of an event stream."""
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        body = json.loads(data[-1])
    else:
        body = response.json()
    return str(body["result"]["content"][0]["text"])


async def test_a_2026_client_without_a_session_is_served_listed_privately_and_decided(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    flags = ("--state", "memory", "--audit-log", str(audit))
    with serve(policy_file(tmp_path), *flags, upstream=SDK_SERVER) as gw, anyio.fail_after(TIMEOUT):
        async with Client(gw.url, mode="2026-07-28") as client:
            listed = await client.list_tools()
            allowed = await client.call_tool("echo", {"text": "hello"})
            denied = await client.call_tool("echo", {"text": "HELLO"})
            ran = await client.call_tool("count", {})
        async with Client(gw.url) as auto:  # probes server/discover: now answered, so it stays in 2026-07-28
            version = auto.protocol_version
            again = await auto.call_tool("count", {})
        async with httpx.AsyncClient(timeout=30) as http:
            raw = await http.post(gw.url, json=call(1, "echo", text="raw"), headers=HEADERS)
        pids = upstreams(gw)
    names = {tool.name for tool in listed.tools}
    assert "echo" in names and "big" not in names and listed.cache_scope == "private"
    assert text(allowed) == "hello"
    assert denied.is_error and text(denied) == "[POLICY DENIED] Only lowercase letters may be echoed"
    assert text(ran) == "1"  # the denied call never reached the server; both calls had the same upstream
    assert version == "2026-07-28" and text(again) == "1"  # the same caller's idle upstream, lent again
    assert raw.status_code == 200 and "mcp-session-id" not in raw.headers and answer_text(raw) == "raw"
    assert len(pids) == 1
    decisions = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [e["allow"] for e in decisions if e["event"] == "decision" and e["tool"] == "echo"] == [True, False, True]


async def test_callers_and_requests_at_once_never_share_an_upstream(tmp_path: Path) -> None:
    idp = Issuer(tmp_path)
    alice = {**HEADERS, "authorization": f"Bearer {idp.token('alice', team='payments')}"}
    bob = {**HEADERS, "authorization": f"Bearer {idp.token('bob', team='ops')}"}
    flags = ("--state", "memory", *idp.flags())
    with serve(policy_file(tmp_path), *flags, upstream=SDK_SERVER) as gw, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=60) as http:
            answers: list[httpx.Response] = []

            async def slow_call() -> None:  # both with id 1: two clients that happen to number alike
                answers.append(await http.post(gw.url, json=call(1, "slow", seconds=1.0), headers=alice))

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow_call)
                tg.start_soon(slow_call)
            bobs = await http.post(gw.url, json=call(2, "count"), headers=bob)
            alices = await http.post(gw.url, json=call(3, "count"), headers=alice)
    assert [a.status_code for a in answers] == [200, 200]
    assert [answer_text(a) for a in answers] == ["slept 1.0", "slept 1.0"]
    assert answer_text(bobs) == "0"  # bob's own upstream: he ran nothing
    assert answer_text(alices) == "1"  # one of alice's two, each of which ran one call


async def test_bad_routing_headers_notifications_and_a_client_that_leaves(tmp_path: Path) -> None:
    with serve(policy_file(tmp_path), "--state", "memory", upstream=SDK_SERVER) as gw, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=30) as http:
            lying = await http.post(gw.url, json=call(1, "echo", text="x"), headers={**HEADERS, "mcp-method": "ping"})
            old = {**HEADERS, "mcp-protocol-version": "2025-11-25"}
            other_version = await http.post(gw.url, json=call(2, "echo", text="x"), headers=old)
            assert upstreams(gw) == []  # refused before any upstream was lent
            notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "_meta": META}}
            notified = await http.post(gw.url, json=notice, headers=HEADERS)

            async with http.stream(
                "POST", gw.url, json=call(3, "slow", token="t", seconds=30), headers=HEADERS
            ) as streaming:
                async for line in streaming.aiter_lines():
                    if line.startswith("data: ") and "notifications/progress" in line:
                        break  # the call runs upstream; the client goes away
            (left,) = upstreams(gw)
            deadline = time.monotonic() + 20
            while alive(left) and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            fresh = await http.post(gw.url, json=call(4, "count"), headers=HEADERS)
    for refused in (lying, other_version):
        assert refused.status_code == 400 and refused.json()["error"]["code"] == -32020
    assert "mcp-method" in lying.json()["error"]["message"]
    assert notified.status_code == 202
    assert not alive(left)  # its call was abandoned: that upstream is not lent to anyone again
    assert answer_text(fresh) == "0"


async def test_silent_event_streams_carry_keep_alive_comments(tmp_path: Path) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    with serve(policy_file(tmp_path), "--state", "memory", upstream=SDK_SERVER) as gw, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=60) as http:
            first = await http.post(gw.url, json=initialize, headers=HEADERS)
            session = {**HEADERS, "mcp-session-id": first.headers["mcp-session-id"]}
            await http.post(gw.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            listened: list[str] = []
            answered: list[str] = []

            async def listen() -> None:
                async with http.stream("GET", gw.url, headers=session) as stream:
                    async for line in stream.aiter_lines():
                        listened.append(line)
                        if line.startswith(":"):
                            return

            async def slow() -> None:
                legacy = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
                legacy["params"] = {"name": "slow", "arguments": {"seconds": 17}, "_meta": {"progressToken": "p"}}
                async with http.stream("POST", gw.url, json=legacy, headers=session) as stream:
                    async for line in stream.aiter_lines():
                        answered.append(line)

            silent: list[httpx.Response] = []

            async def silent_modern() -> None:  # no progress token: nothing to send until the answer
                silent.append(await http.post(gw.url, json=call(3, "slow", seconds=17), headers=HEADERS))

            async with anyio.create_task_group() as tg:
                tg.start_soon(listen)
                tg.start_soon(slow)
                tg.start_soon(silent_modern)
    (quiet,) = silent
    assert quiet.headers["content-type"].startswith("text/event-stream")
    assert quiet.text.startswith(": keep-alive\n\n") and answer_text(quiet) == "slept 17.0"
    assert listened[-1] == ": keep-alive"
    comments = [n for n, line in enumerate(answered) if line == ": keep-alive"]
    progress = [n for n, line in enumerate(answered) if "notifications/progress" in line]
    assert comments and progress and max(progress) < comments[0]  # silence after the progress, then a comment
    assert "slept 17" in answered[-2] or "slept 17" in answered[-1]
