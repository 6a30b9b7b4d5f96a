"""The HTTP upstream against real Streamable HTTP servers: every request answered, never a hang."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest

from regogate.core import ConfigError
from regogate.proxy.relay._http_headers import param_header_map, param_headers
from regogate.proxy.relay._http_session import SESSION_ENDED, UPSTREAM_UNAVAILABLE
from regogate.proxy.relay._http_target import HttpTarget
from regogate.proxy.relay._http_upstream import HttpUpstream
from regogate.proxy.relay._wire import UPSTREAM_GONE
from tests.http_servers import RunningServer, free_port, python_http_server

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
WAIT = 20.0  # bound on any one answer; the loaded CI machine is slow, a hang is not


@pytest.fixture(scope="module", params=["sse", "json"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    flags = ["--json"] if request.param == "json" else []
    with python_http_server(*flags) as running:
        yield running


class Peer:
    """A raw JSON-RPC client on the upstream's two line streams."""

    def __init__(self, upstream: HttpUpstream) -> None:
        self.upstream = upstream
        self.next_id = 0

    async def send(self, message: dict[str, object]) -> None:
        await self.upstream.send(json.dumps({"jsonrpc": "2.0", **message}).encode())

    async def request(self, method: str, params: Mapping[str, object] | None = None) -> int:
        self.next_id += 1
        await self.send({"id": self.next_id, "method": method, "params": params or {}})
        return self.next_id

    async def receive(self) -> dict[str, object]:
        with anyio.fail_after(WAIT):
            line = await self.upstream.receive()
        assert isinstance(line, bytes), line
        assert b"\n" not in line
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    async def answer(self, request_id: int) -> dict[str, object]:
        """Messages until the answer to ``request_id``; the ones before it are kept in ``seen``."""
        self.seen: list[dict[str, object]] = []
        while True:
            message = await self.receive()
            if message.get("id") == request_id and "method" not in message:
                return message
            self.seen.append(message)

    async def initialize(self, capabilities: dict[str, object] | None = None) -> None:
        params = {
            "protocolVersion": "2025-11-25",
            "capabilities": capabilities or {},
            "clientInfo": {"name": "test", "version": "1"},
        }
        answer = await self.answer(await self.request("initialize", params))
        assert "result" in answer, answer
        await self.send({"method": "notifications/initialized"})

    async def call(self, name: str, **arguments: object) -> dict[str, object]:
        return await self.answer(await self.request("tools/call", {"name": name, "arguments": arguments}))


@asynccontextmanager
async def peer(url: str, **target: object) -> AsyncIterator[Peer]:
    async with HttpUpstream.connect(HttpTarget(url, **target)) as upstream:  # type: ignore[arg-type]
        yield Peer(upstream)


def text(answer: dict[str, object]) -> str:
    result = answer["result"]
    assert isinstance(result, dict), answer
    return str(result["content"][0]["text"])


async def test_a_session_lists_and_calls_tools_with_its_session_id(server: RunningServer) -> None:
    async with peer(server.url) as p:
        await p.initialize()
        tools = await p.answer(await p.request("tools/list"))
        assert {"echo", "slow", "big"} <= {t["name"] for t in tools["result"]["tools"]}  # type: ignore[index]
        assert text(await p.call("echo", text="hi")) == "hi"
        assert p.upstream.session_id is not None  # the server refuses later requests without it


async def test_progress_on_the_answer_stream_comes_before_the_answer(server: RunningServer) -> None:
    if "--json" in server.process.args:  # type: ignore[operator]
        pytest.skip("a JSON-answer server has no stream to send progress on")
    async with peer(server.url) as p:
        await p.initialize()
        params = {"name": "slow", "arguments": {"seconds": 0}, "_meta": {"progressToken": "t1"}}
        answer = await p.answer(await p.request("tools/call", params))
        assert text(answer) == "slept 0.0"
        progress = [m for m in p.seen if m.get("method") == "notifications/progress"]
        assert [m["params"]["progress"] for m in progress] == [1, 2, 3]  # type: ignore[index]


async def test_sampling_on_the_answer_stream_gets_the_clients_reply(server: RunningServer) -> None:
    if "--json" in server.process.args:  # type: ignore[operator]
        pytest.skip("a JSON-answer server cannot send requests during a call")
    async with peer(server.url) as p:
        await p.initialize({"sampling": {}})
        call = await p.request("tools/call", {"name": "sample", "arguments": {"prompt": "2+2"}})
        sampling = await p.receive()
        assert sampling["method"] == "sampling/createMessage"
        reply = {"role": "assistant", "content": {"type": "text", "text": "four"}, "model": "m"}
        await p.send({"id": sampling["id"], "result": reply})
        assert text(await p.answer(call)) == "four"


async def test_server_requests_and_notifications_arrive_on_the_get_stream(server: RunningServer) -> None:
    async with peer(server.url) as p:
        await p.initialize({"sampling": {}})
        assert text(await p.call("sample_later", prompt="hello")) == "scheduled"
        sampling = await p.receive()
        assert sampling["method"] == "sampling/createMessage"
        reply = {"role": "assistant", "content": {"type": "text", "text": "hi back"}, "model": "m"}
        await p.send({"id": sampling["id"], "result": reply})
        log = await p.receive()
        assert log["method"] == "notifications/message"
        assert log["params"]["data"] == "sampled later: hi back"  # type: ignore[index]


async def test_a_large_answer_arrives_whole_on_one_line(server: RunningServer) -> None:
    async with peer(server.url) as p:
        await p.initialize()
        assert len(text(await p.call("big", size=5_000_000))) == 5_000_000


async def test_a_session_ended_by_the_server_answers_the_request_and_ends_the_upstream() -> None:
    with python_http_server() as server:
        async with peer(server.url) as p:
            await p.initialize()
            httpx.post(f"{server.base}/forget", timeout=WAIT).raise_for_status()
            answer = await p.call("echo", text="hi")
            assert answer["error"]["code"] == SESSION_ENDED  # type: ignore[index]
            with anyio.fail_after(WAIT):
                assert await p.upstream.receive() is None
            assert p.upstream.status == 1


async def test_the_server_going_away_mid_call_is_an_error_answer_not_a_hang() -> None:
    with python_http_server() as server:
        async with peer(server.url) as p:
            await p.initialize()
            params = {"name": "slow", "arguments": {"seconds": 60}, "_meta": {"progressToken": 1}}
            call = await p.request("tools/call", params)
            await p.receive()  # the first progress: the call is running
            server.process.send_signal(signal.SIGKILL)
            answer = await p.answer(call)
            assert answer["error"]["code"] < -31000  # type: ignore[index]


async def test_a_server_silent_past_the_read_timeout_fails_the_call(server: RunningServer) -> None:
    async with peer(server.url, read_timeout=0.5) as p:
        await p.initialize()
        with anyio.fail_after(WAIT):
            answer = await p.call("slow", seconds=5)
        assert answer["error"] == {"code": UPSTREAM_UNAVAILABLE, "message": "upstream timed out"}


async def test_an_unreachable_server_is_an_error_answer_for_the_request() -> None:
    async with peer(f"http://127.0.0.1:{free_port()}/mcp", connect_timeout=1.0) as p:
        answer = await p.answer(await p.request("initialize", {}))
        assert answer["error"]["code"] == UPSTREAM_UNAVAILABLE  # type: ignore[index]
        assert "unreachable" in answer["error"]["message"]  # type: ignore[index]


async def test_exit_deletes_the_session(server: RunningServer) -> None:
    async with peer(server.url) as p:
        await p.initialize()
        session = p.upstream.session_id
        assert session is not None
    probe = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"mcp-session-id": session, "accept": "application/json, text/event-stream"}
    assert httpx.post(server.url, json=probe, headers=headers, timeout=WAIT).status_code == 404


async def test_secret_headers_reach_the_server_and_no_log(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-token-value"
    caplog.set_level(logging.DEBUG)
    with python_http_server("--token", secret) as server:
        async with peer(server.url, headers=(("Authorization", f"Bearer {secret}"),)) as p:
            await p.initialize()
            assert text(await p.call("echo", text="ok")) == "ok"
        async with peer(server.url, headers=(("Authorization", "Bearer wrong"),)) as p:
            answer = await p.answer(await p.request("initialize", {}))
            assert answer["error"]["message"] == "upstream answered HTTP 401"  # type: ignore[index]
    assert secret not in caplog.text
    assert "wrong" not in caplog.text


async def test_a_2026_request_goes_alone_with_its_routing_headers(server: RunningServer) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    }
    async with peer(server.url) as p:
        answer = await p.answer(
            await p.request("tools/call", {"name": "echo", "arguments": {"text": "m"}, "_meta": meta})
        )
        assert text(answer) == "m"
        assert answer["result"]["resultType"] == "complete"  # type: ignore[index]
        assert p.upstream.session_id is None


async def test_an_answer_past_the_size_limit_is_refused_for_its_request(server: RunningServer) -> None:
    async with peer(server.url, max_message=100_000) as p:
        await p.initialize()
        answer = await p.call("big", size=200_000)
        assert answer["error"]["message"] == "upstream reply too large"  # type: ignore[index]
        assert text(await p.call("echo", text="still here")) == "still here"


async def test_a_cancelled_call_gets_no_error_answer_from_the_bridge(server: RunningServer) -> None:
    async with peer(server.url) as p:
        await p.initialize()
        call = await p.request("tools/call", {"name": "slow", "arguments": {"seconds": 30}})
        await p.send({"method": "notifications/cancelled", "params": {"requestId": call, "reason": "test"}})
        assert text(await p.call("echo", text="next")) == "next"
        assert all(m.get("id") != call for m in p.seen)


async def test_a_cancelled_2026_call_closes_its_stream_and_posts_nothing(server: RunningServer) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    async with peer(server.url) as p:
        call = await p.request("tools/call", {"name": "slow", "arguments": {"seconds": 30}, "_meta": meta})
        await p.send({"method": "notifications/cancelled", "params": {"requestId": call}})
        echo = await p.request("tools/call", {"name": "echo", "arguments": {"text": "after"}, "_meta": meta})
        assert text(await p.answer(echo)) == "after"
        assert all(m.get("id") != call for m in p.seen)
        assert not p.upstream._posts  # the cancelled POST is gone, not waiting 30 s


def modern_call(name: str, arguments: dict[str, object]) -> dict[str, object]:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    return {"name": name, "arguments": arguments, "_meta": meta}


async def test_a_2026_call_mirrors_its_declared_argument_in_an_mcp_param_header(server: RunningServer) -> None:
    async with peer(server.url) as p:
        # Before the tool was listed the bridge knows no declaration: the server refuses the call.
        unlisted = await p.answer(await p.request("tools/call", modern_call("route", {"region": "eu", "text": "x"})))
        assert unlisted["error"]["code"] == -32020  # type: ignore[index]
        meta = modern_call("", {})["_meta"]
        await p.answer(await p.request("tools/list", {"_meta": meta}))
        for region in ("eu-west-1", "zone ünïcode", " padded ", "=?base64?trick?="):
            answer = await p.answer(
                await p.request("tools/call", modern_call("route", {"region": region, "text": "x"}))
            )
            assert text(answer) == f"{region}:x", answer


def test_declarations_follow_the_spec_rules() -> None:
    ok = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "x-mcp-header": "A"},
            "n": {"type": "object", "properties": {"b": {"type": "integer", "x-mcp-header": "B"}}},
        },
    }
    declared = param_header_map(ok)
    assert declared == {("a",): "A", ("n", "b"): "B"}
    assert param_headers(declared, {"a": "v\r\nInjected: 1", "n": {"b": 7}}) == {
        "mcp-param-a": "=?base64?dg0KSW5qZWN0ZWQ6IDE=?=",
        "mcp-param-b": "7",
    }
    assert param_headers(declared, {"a": None, "n": "not an object"}) == {}
    assert param_headers(declared, {"a": True, "n": {"b": [1]}}) == {"mcp-param-a": "true"}
    for bad in (
        {"properties": {"a": {"type": "number", "x-mcp-header": "A"}}},  # numbers are not allowed
        {"properties": {"a": {"type": "string", "x-mcp-header": "A B"}}},  # not a token
        {"properties": {"a": {"type": ["string"], "x-mcp-header": "A"}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": "A"}, "b": {"type": "string", "x-mcp-header": "a"}}},
        {"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]},  # off the properties chain
        {"type": "string", "x-mcp-header": "Root"},
    ):
        assert param_header_map(bad) == {}, bad


def test_a_user_header_cannot_take_a_routing_header_name() -> None:
    for name in ("Mcp-Param-Region", "mcp-name", "MCP-Method", "Last-Event-ID"):
        with pytest.raises(ConfigError, match="set by regogate"):
            HttpTarget("http://127.0.0.1:1/mcp", headers=((name, "x"),))


class CuttingProxy:
    """A TCP relay to the server that drops the connection once the server sends ``marker``.

    After the cut it passes connections on again, or, with ``refuse_after``, closes each at once.
    """

    def __init__(self, target: str, marker: bytes, *, refuse_after: bool = False) -> None:
        parts = httpx.URL(target)
        self.host, self.port = parts.host, parts.port or 80
        self.path = parts.path
        self.marker, self.refuse_after = marker, refuse_after
        self.cut = anyio.Event()

    async def serve(self, tg: anyio.abc.TaskGroup) -> str:
        port: int = await tg.start(self._listen)
        return f"http://127.0.0.1:{port}{self.path}"

    async def _listen(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._relay)

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            if self.cut.is_set() and self.refuse_after:
                return
            async with await anyio.connect_tcp(self.host, self.port) as server, anyio.create_task_group() as tg:
                tg.start_soon(self._pump, client, server, False, tg.cancel_scope)
                tg.start_soon(self._pump, server, client, True, tg.cancel_scope)

    async def _pump(
        self, source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, watch: bool, scope: anyio.CancelScope
    ) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
                if watch and not self.cut.is_set() and self.marker in chunk:
                    self.cut.set()
                    break
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        scope.cancel()  # one side is over: drop the connection both ways


async def start_cut_call(p: Peer, proxy: CuttingProxy) -> int:
    """Initialize, then start a call whose answer stream the proxy cuts after the first progress."""
    await p.initialize()
    params = {"name": "slow", "arguments": {"seconds": 1}, "_meta": {"progressToken": "cut"}}
    call = await p.request("tools/call", params)
    with anyio.fail_after(WAIT):
        await proxy.cut.wait()
    return call


async def count_calls(url: str) -> int:
    async with peer(url) as p:
        await p.initialize()
        return int(text(await p.call("count")))


async def test_a_broken_answer_stream_is_resumed_with_last_event_id_and_the_call_runs_once() -> None:
    with python_http_server("--resumable") as server:
        before = await count_calls(server.url)
        proxy = CuttingProxy(server.url, b"step 1")
        async with anyio.create_task_group() as tg:
            async with peer(await proxy.serve(tg)) as p:
                call = await start_cut_call(p, proxy)
                assert text(await p.answer(call)) == "slept 1.0"
                progress = [m["params"] for m in p.seen if m.get("method") == "notifications/progress"]
                assert progress[-1]["progress"] == 3, progress  # type: ignore[index]  # replayed, not lost
            tg.cancel_scope.cancel()
        assert await count_calls(server.url) == before + 1


async def test_a_broken_answer_stream_without_event_ids_is_an_error_answer() -> None:
    with python_http_server() as server:
        proxy = CuttingProxy(server.url, b"step 1")
        async with anyio.create_task_group() as tg:
            async with peer(await proxy.serve(tg)) as p:
                call = await start_cut_call(p, proxy)
                answer = await p.answer(call)
                assert answer["error"]["code"] == UPSTREAM_GONE  # type: ignore[index]
            tg.cancel_scope.cancel()


async def test_a_resume_that_keeps_failing_ends_in_an_error_answer_not_a_hang() -> None:
    with python_http_server("--resumable") as server:
        proxy = CuttingProxy(server.url, b"step 1", refuse_after=True)
        async with anyio.create_task_group() as tg:
            async with peer(await proxy.serve(tg)) as p:
                call = await start_cut_call(p, proxy)
                answer = await p.answer(call)
                assert answer["error"] == {
                    "code": UPSTREAM_GONE,
                    "message": "upstream answer stream broke and could not be resumed",
                }
            tg.cancel_scope.cancel()
