"""The relay: what it passes untouched, what it decides, and what it answers itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import FileUrl

from regogate.proxy.relay._codec import encode
from regogate.proxy.relay._upstream import Upstream
from tests.proxy.conftest import EVERYTHING, START_TIMEOUT, TIME_SERVER, Gate, Pipes, receive_json, relay_params

pytestmark = pytest.mark.anyio

RelayOnPipes = Callable[..., AbstractAsyncContextManager[Pipes]]
MODERN = "2026-07-28"


def call(request_id: object, name: str | None = "echo", **params: object) -> dict[str, object]:
    body: dict[str, object] = {"arguments": {"message": "hi"}, **params}
    if name is not None:
        body["name"] = name
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": body}


def ping(request_id: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "ping"}


async def test_an_allowed_call_goes_upstream_as_the_decided_message_in_canonical_form(
    relay_on_pipes: RelayOnPipes,
) -> None:
    gate = Gate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        raw = b'{"jsonrpc":"2.0", "id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":1.50}}}\r'
        await pipes.from_client(raw)
        with anyio.fail_after(5):
            canonical = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":1.5}}}'
            assert await pipes.upstream_receive.receive() == canonical
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
        assert (await pipes.to_client())["id"] == 1
        assert await gate.wait_settled(1) == [("d1", True)]
    context = gate.calls[0]
    assert (context.tool_name, context.arguments, context.protocol_version) == ("echo", {"n": 1.5}, "2025-11-25")
    assert context.client_info == {"name": "pytest", "version": "1"}
    assert context.tool == {"name": "echo", "inputSchema": {"type": "object"}}


@pytest.mark.parametrize(
    ("reply", "succeeded"),
    [
        ({"result": {"content": [], "isError": True}}, False),
        ({"error": {"code": -32602, "message": "bad"}}, False),
        ({"result": {"resultType": "input_required", "inputRequests": {}}}, False),
    ],
)
async def test_a_failed_call_is_settled_as_failed(
    relay_on_pipes: RelayOnPipes, reply: dict[str, object], succeeded: bool
) -> None:
    gate = Gate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(2))
        assert (await pipes.to_upstream())["id"] == 2
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 2, **reply})
        assert (await pipes.to_client())["id"] == 2
        assert await gate.wait_settled(1) == [("d1", succeeded)]


async def test_a_denied_call_gets_an_error_result_and_never_reaches_the_upstream(
    relay_on_pipes: RelayOnPipes,
) -> None:
    gate = Gate(deny={"echo"})
    async with relay_on_pipes(gate, deny_prefix="[NOPE]") as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(3))
        denial = await pipes.to_client()
        await pipes.from_client(ping(4))
        assert (await pipes.to_upstream())["id"] == 4  # the call never went ahead of it
    assert denial == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {
            "content": [{"type": "text", "text": "[NOPE] echo is off limits"}],
            "isError": True,
            "_meta": {"regogate/decision": {"rule": "deny_by_name", "decision_id": "d1"}},
        },
    }
    assert gate.settled == []


async def test_an_unknown_tool_is_learnt_from_a_private_tools_list_the_client_never_sees(
    relay_on_pipes: RelayOnPipes,
) -> None:
    gate = Gate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.from_client(call(5, "echo"))
        private = await pipes.to_upstream()
        assert private["method"] == "tools/list" and str(private["id"]).startswith("regogate:tools:")
        page1 = {"tools": [{"name": "other"}], "nextCursor": "p2"}
        await pipes.from_upstream({"jsonrpc": "2.0", "id": private["id"], "result": page1})
        second = await pipes.to_upstream()
        assert second["method"] == "tools/list" and second["params"] == {"cursor": "p2"}
        page2 = {"tools": [{"name": "echo", "annotations": {"readOnlyHint": True}}]}
        await pipes.from_upstream({"jsonrpc": "2.0", "id": second["id"], "result": page2})
        assert (await pipes.to_upstream())["id"] == 5
        await pipes.from_client(ping(6))
        assert (await pipes.to_upstream())["id"] == 6
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 6, "result": {}})
        assert (await pipes.to_client())["id"] == 6  # no tools/list reply came first
    assert gate.calls[0].tool == {"name": "echo", "annotations": {"readOnlyHint": True}}


@pytest.mark.parametrize("per_request", [True, False], ids=["per-request-meta", "negotiated"])
async def test_denials_in_the_2026_07_28_era_carry_result_type(relay_on_pipes: RelayOnPipes, per_request: bool) -> None:
    gate = Gate(deny={"echo"})
    async with relay_on_pipes(gate) as pipes:
        if per_request:
            meta: dict[str, object] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/logLevel": "debug",
            }
            await pipes.from_client(call(7, _meta=meta))
            private = await pipes.to_upstream()  # stateless era: no handshake to wait for
            assert private["params"] == {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}
        else:
            await pipes.handshake(MODERN)
            await pipes.from_client(call(7))
            private = await pipes.to_upstream()
        await pipes.from_upstream({"jsonrpc": "2.0", "id": private["id"], "result": {"tools": [{"name": "echo"}]}})
        denial = await pipes.to_client()
    assert denial["result"]["resultType"] == "complete"  # type: ignore[index]
    assert gate.calls[0].protocol_version == MODERN


async def test_handshake_era_denials_have_no_result_type(relay_on_pipes: RelayOnPipes) -> None:
    async with relay_on_pipes(Gate(deny={"echo"})) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(8))
        assert "resultType" not in (await pipes.to_client())["result"]  # type: ignore[operator]


async def test_a_slow_decision_does_not_hold_up_pings(relay_on_pipes: RelayOnPipes) -> None:
    gate = Gate(slow={"echo"})
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(9))
        with anyio.fail_after(5):
            await gate.deciding.wait()
        await pipes.from_client(ping(10))
        assert (await pipes.to_upstream())["id"] == 10
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 10, "result": {}})
        assert (await pipes.to_client())["id"] == 10
        gate.release.set()
        assert (await pipes.to_upstream())["id"] == 9


async def test_a_call_cancelled_while_being_decided_is_never_forwarded(relay_on_pipes: RelayOnPipes) -> None:
    gate = Gate(slow={"echo"})
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(11))
        with anyio.fail_after(5):
            await gate.deciding.wait()
        cancel: dict[str, object] = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 11}}
        await pipes.from_client(cancel)
        await pipes.from_client(ping(12))
        assert (await pipes.to_upstream())["id"] == 12  # the relay has read the cancellation by now
        gate.release.set()
        assert await gate.wait_settled(1) == [("d1", False)]  # the reservation is rolled back
        await pipes.from_client(ping(13))
        assert (await pipes.to_upstream())["id"] == 13  # neither the call nor its cancellation went up
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 13, "result": {}})
        assert (await pipes.to_client())["id"] == 13  # and the client got no answer for it


@pytest.mark.parametrize(
    ("reply", "kept"),
    [({"result": {"content": []}}, True), ({"error": {"code": -32800, "message": "cancelled"}}, False), (None, True)],
    ids=["ran", "server-said-no", "never-answered"],
)
async def test_a_cancel_after_forwarding_is_passed_on_and_only_the_servers_error_releases_the_reservation(
    relay_on_pipes: RelayOnPipes, reply: dict[str, object] | None, kept: bool
) -> None:
    gate = Gate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(13))
        assert (await pipes.to_upstream())["id"] == 13
        cancel: dict[str, object] = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 13}}
        await pipes.from_client(cancel)
        assert await pipes.to_upstream() == cancel
        await pipes.from_client(ping(14))
        assert (await pipes.to_upstream())["id"] == 14
        assert gate.settled == []  # the cancel alone changed nothing: the server may be running the call
        if reply is not None:
            await pipes.from_upstream({"jsonrpc": "2.0", "id": 13, **reply})
            assert (await pipes.to_client())["id"] == 13
            assert await gate.wait_settled(1) == [("d1", kept)]
    if reply is None:  # the session ended without an answer
        assert gate.settled == [("d1", True)]


async def test_tools_list_hides_tools_and_keeps_cursor_meta_and_unknown_fields(relay_on_pipes: RelayOnPipes) -> None:
    async with relay_on_pipes(Gate(hide={"get-env"})) as pipes:
        await pipes.from_client({"jsonrpc": "2.0", "id": "l1", "method": "tools/list"})
        await pipes.to_upstream()
        result = {
            "tools": [{"name": "echo", "x-vendor": 1}, {"name": "get-env"}],
            "nextCursor": "c2",
            "_meta": {"k": "v"},
            "futureField": [1, 2],
        }
        await pipes.from_upstream({"jsonrpc": "2.0", "id": "l1", "result": result})
        listed = await pipes.to_client()
    assert listed["result"] == {**result, "tools": [{"name": "echo", "x-vendor": 1}]}


async def test_everything_else_passes_with_its_meaning_unchanged_in_canonical_form(
    relay_on_pipes: RelayOnPipes,
) -> None:
    upward = [
        b'{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{"_meta":{"x/y":[1,  2]}}}',
        b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}\r',
        b'{"jsonrpc":"2.0","id":"s1","result":{"role":"assistant","content":{"type":"text","text":"\\u00e9\\u2028"}}}',
        b'{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///x","n":1E2}}',
    ]
    downward = [
        b'{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"messages":[]}}',
        b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}',
        b'{"jsonrpc":"2.0","id":"d","error":{"code":-32601,"message":"Method not found"}}',
        b'{"method":"notifications/message","params":{"level":"info","data":"\xc3\xa9 \xe2\x80\xa9"},"jsonrpc":"2.0"}',
    ]
    async with relay_on_pipes(Gate()) as pipes:
        for line in upward:
            await pipes.from_client(line)
        with anyio.fail_after(5):
            went_up = [await pipes.upstream_receive.receive() for _ in upward]
        for line in downward:  # "d" is answered only once it went up
            await pipes.from_upstream(line)
        with anyio.fail_after(5):
            came_down = [await pipes.client_receive.receive() for _ in downward]
    for sent, received in [*zip(upward, went_up, strict=True), *zip(downward, came_down, strict=True)]:
        assert isinstance(received, bytes)
        assert json.loads(received) == json.loads(sent)
        assert received == json.dumps(json.loads(sent), separators=(",", ":"), ensure_ascii=False).encode().replace(
            b"\xe2\x80\xa8", b"\\u2028"
        ).replace(b"\xe2\x80\xa9", b"\\u2029")
        assert b"\r" not in received and b"\xe2\x80" not in received  # no CR, no raw U+2028/U+2029


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (json.dumps(call(20, name=None)).encode(), "no tool name"),
        (b'{"jsonrpc":"2.0","id":20,"method":"tools/call","params":["echo"]}', "params must be an object"),
        (json.dumps(call(20, arguments=[1])).encode(), "arguments must be an object"),
        (b'{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"a","name":"echo"}}', "duplicate"),
    ],
)
async def test_a_tools_call_that_cannot_be_parsed_is_denied_and_not_forwarded(
    relay_on_pipes: RelayOnPipes, line: bytes, reason: str
) -> None:
    gate = Gate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.from_client(line)
        denial = await pipes.to_client()
        await pipes.from_client(ping(21))
        assert (await pipes.to_upstream())["id"] == 21
    assert denial["id"] == 20 and denial["result"]["isError"] is True  # type: ignore[index]
    assert reason in denial["result"]["content"][0]["text"]  # type: ignore[index]
    assert gate.calls == []


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600),
        (b"{not json", -32700),
        (b"42", -32600),
        (b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"ping"}', -32700),
        ('{"jsonrpc":"2.0","id":1,"method":"ping"}'.encode("utf-16"), -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\xff"}}', -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":NaN}}', -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":1e400}}', -32700),
    ],
    ids=["batch", "garbage", "scalar", "utf8-bom", "utf16", "not-utf8", "nan", "overflow"],
)
async def test_lines_that_are_not_one_strict_json_object_are_answered_with_an_error(
    relay_on_pipes: RelayOnPipes, line: bytes, code: int
) -> None:
    async with relay_on_pipes(Gate()) as pipes:
        await pipes.from_client(line)
        error = await pipes.to_client()
        await pipes.from_client(ping(2))
        assert (await pipes.to_upstream())["id"] == 2  # nothing of the bad line went up first
    assert error["id"] is None and error["error"]["code"] == code  # type: ignore[index]


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"p":\r{"jsonrpc":"2.0","id":8,"method":"tools/call"}\r}}',
        b'{"jsonrpc":"2.0","id":7,"method":"ping","method":"tools/call","params":{"name":"x"}}',
        b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"a":1,"a":2}}',
        b'{"jsonrpc":"2.0","id":7,"method":"ping","params":' + b"[" * 101 + b"]" * 101 + b"}",
        b'{"jsonrpc":"2.0","id":7,"method":"ping","params":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"jsonrpc":"2.0","id":7,"method":"ping","params":' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
        b'{"jsonrpc":"2.0","id":7,"method":true}',
    ],
    ids=["bare-cr", "duplicate-method", "duplicate-key", "depth-101", "depth-5000", "objects-3000", "method-type"],
)
async def test_ambiguous_or_too_deep_requests_get_an_error_with_their_id_and_the_session_goes_on(
    relay_on_pipes: RelayOnPipes, line: bytes
) -> None:
    gate = Gate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.from_client(line)
        error = await pipes.to_client()
        await pipes.from_client(ping(2))
        assert (await pipes.to_upstream())["id"] == 2
    assert error["id"] == 7 and error["error"]["code"] == -32600  # type: ignore[index]
    assert gate.calls == []


async def test_nesting_up_to_the_limit_passes(relay_on_pipes: RelayOnPipes) -> None:
    deep = "[" * 98 + '"[[[["' + "]" * 98  # brackets in strings do not count
    line = b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"a":' + deep.encode() + b"}}"
    async with relay_on_pipes(Gate()) as pipes:
        await pipes.from_client(line)
        assert (await pipes.to_upstream())["params"] == json.loads(line)["params"]


@pytest.mark.parametrize(
    "reply", [b'{"jsonrpc":"2.0","id":30,"result":{"content":[}', b'{"jsonrpc":"2.0","id":30,"result":"done"}']
)
async def test_an_unusable_reply_to_a_forwarded_call_becomes_an_error(
    relay_on_pipes: RelayOnPipes, reply: bytes
) -> None:
    gate = Gate()
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(30))
        assert (await pipes.to_upstream())["id"] == 30
        await pipes.from_upstream(reply)
        await pipes.from_upstream(b'{"jsonrpc":"2.0","id":99,"result":nope}')  # unknown id: dropped
        error = await pipes.to_client()
        await pipes.from_upstream({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
        assert "id" not in await pipes.to_client()
        assert await gate.wait_settled(1) == [("d1", True)]  # no evidence it did not run: the reservation stands
    assert error["id"] == 30 and error["error"]["code"] == -31001  # type: ignore[index]


async def test_12_mib_lines_pass_in_both_directions(relay_on_pipes: RelayOnPipes) -> None:
    up = encode({"jsonrpc": "2.0", "id": "r1", "method": "resources/read", "params": {"u": "é" * 6_000_000}}).decode()
    down = encode({"jsonrpc": "2.0", "id": "r1", "result": {"contents": [{"text": "y" * 12_000_000}]}}).decode()
    async with relay_on_pipes(Gate()) as pipes, anyio.create_task_group() as tg:
        tg.start_soon(pipes.from_client, up.encode())  # the relay pushes back while the test reads
        with anyio.fail_after(10):
            assert await pipes.upstream_receive.receive() == up.encode()
        tg.start_soon(pipes.from_upstream, down.encode())
        with anyio.fail_after(10):
            assert await pipes.client_receive.receive() == down.encode()


async def test_an_oversize_request_is_answered_with_an_error_that_names_it(relay_on_pipes: RelayOnPipes) -> None:
    async with relay_on_pipes(Gate(), max_line=1024 * 1024) as pipes:
        big = b'{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"name":"echo","arguments":{"m":"'
        await pipes.from_client(big + b"x" * (2 * 1024 * 1024) + b'"}}}')
        error = await pipes.to_client()
    assert error["id"] == "big" and error["error"]["code"] == -32600  # type: ignore[index]


async def test_client_eof_lets_pending_decisions_finish_then_closes_upstream_stdin(
    relay_on_pipes: RelayOnPipes,
) -> None:
    gate = Gate(deny={"echo"})
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.list_tools("echo")
        await pipes.from_client(call(40))
        await pipes.client_send.aclose()
        assert (await pipes.to_client())["id"] == 40
        with anyio.fail_after(5):
            await pipes.client_closed.wait()
            assert await pipes.upstream_receive.receive() is None


# --- end to end: the real SDK client, the relay as a subprocess, real servers ---------------


async def _sample(context: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="sampled!"), model="fake-model"
    )


async def _elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="decline")


async def _roots(context: ClientRequestContext) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri=FileUrl("file:///tmp/regogate-root"), name="scratch")])


@pytest.mark.slow
async def test_the_sdk_client_gets_every_feature_of_server_everything_through_the_relay() -> None:
    steps: list[float] = []
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    logged = anyio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)
        logged.set()

    client = Client(
        relay_params(EVERYTHING, gateway="deny:get-sum,hide:get-env"),
        sampling_callback=_sample,
        elicitation_callback=_elicit,
        list_roots_callback=_roots,
        logging_callback=on_log,
    )
    with anyio.fail_after(30):
        async with client:  # mode="auto": server/discover goes through and fails over to initialize
            assert client.server_info is not None and client.server_info.name == "mcp-servers/everything"
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"echo", "get-sum", "trigger-sampling-request"} <= names and "get-env" not in names

            echo = await client.call_tool("echo", {"message": "hi there"})
            assert echo.content == [types.TextContent(type="text", text="Echo: hi there")] and not echo.is_error

            denied = await client.call_tool("get-sum", {"a": 1, "b": 2})
            assert denied.is_error and denied.meta and "regogate/decision" in denied.meta
            assert isinstance(denied.content[0], types.TextContent)
            assert denied.content[0].text == "[POLICY DENIED] tool get-sum is not allowed"

            long = await client.call_tool(
                "trigger-long-running-operation", {"duration": 0.02, "steps": 2}, progress_callback=on_progress
            )
            assert not long.is_error and steps == [1, 2]

            sampled = await client.call_tool("trigger-sampling-request", {"prompt": "hello", "maxTokens": 5})
            assert "sampled!" in str(sampled.content)
            elicited = await client.call_tool("trigger-elicitation-request", {})
            assert "decline" in str(elicited.content).lower()
            rooted = await client.call_tool("get-roots-list", {})
            assert "regogate-root" in str(rooted.content)

            resources = await client.list_resources()
            first = resources.resources[0]
            assert (await client.read_resource(str(first.uri))).contents
            prompts = await client.list_prompts()
            assert "simple-prompt" in {p.name for p in prompts.prompts}
            prompt = await client.get_prompt("simple-prompt")
            assert prompt.messages
            completion = await client.complete(
                types.PromptReference(type="ref/prompt", name="completable-prompt"),
                {"name": "department", "value": "E"},
            )
            assert "Engineering" in completion.completion.values
            with pytest.warns(MCPDeprecationWarning):
                await client.set_logging_level("debug")
            await client.call_tool("toggle-simulated-logging", {})
            await logged.wait()
            with pytest.warns(MCPDeprecationWarning):
                await client.send_ping()
    assert logs, "log notifications came through"


@pytest.mark.slow
async def test_a_2026_07_28_session_gets_denials_with_result_type() -> None:
    client = Client(relay_params(TIME_SERVER, gateway="deny:convert_time"), mode=MODERN)
    with anyio.fail_after(30):
        async with client:
            assert client.protocol_version == MODERN
            allowed = await client.call_tool("get_current_time", {"timezone": "UTC"})
            assert not allowed.is_error
            # The SDK client rejects a modern-era result without resultType, so parsing proves it is there.
            denied = await client.call_tool(
                "convert_time", {"source_timezone": "UTC", "time": "10:00", "target_timezone": "UTC"}
            )
    assert denied.is_error and denied.result_type == "complete"


@pytest.mark.slow
async def test_an_8_mib_echo_makes_the_round_trip_through_server_everything(
    raw_relay: Callable[..., Upstream],
) -> None:
    relay = raw_relay(EVERYTHING)
    message = "x" * (8 * 1024 * 1024)  # server-everything itself never answers a 10 MiB echo
    with anyio.fail_after(60):
        await initialize(relay)
        await relay.stdin.send(json.dumps(call(2, arguments={"message": message})).encode())
        reply = await receive_json(relay.stdout, 2, START_TIMEOUT)
        assert reply["result"]["content"][0]["text"] == f"Echo: {message}"  # type: ignore[index]
        await relay.stdin.aclose()
        assert await relay.wait(5)


@pytest.mark.slow
async def test_raw_lines_unknown_methods_pass_and_bad_lines_are_answered_here(
    raw_relay: Callable[..., Upstream],
) -> None:
    relay = raw_relay(EVERYTHING, gateway="noisy")
    with anyio.fail_after(60):
        await initialize(relay)
        await relay.stdin.send(json.dumps(call("e1")).encode())
        echo = await receive_json(relay.stdout, "e1")  # stray stdout writes went to stderr
        assert echo["result"]["content"][0]["text"] == "Echo: hi"  # type: ignore[index]
        await relay.stdin.send(b'{"jsonrpc":"2.0","id":"u1","method":"vendor/unknown","params":{"_meta":{"a":1}}}')
        unknown = await receive_json(relay.stdout, "u1")
        assert unknown["error"]["code"] == -32601  # type: ignore[index]
        await relay.stdin.send(b'[{"jsonrpc":"2.0","id":"b1","method":"ping"}]')
        batch = await receive_json(relay.stdout, None)
        assert batch["error"]["code"] == -32600  # type: ignore[index]
        await relay.stdin.send(b'{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"arguments":{}}}')
        denied = await receive_json(relay.stdout, "c1")
        assert denied["result"]["isError"] is True  # type: ignore[index]
        await relay.stdin.aclose()
        assert await relay.wait(5)


async def initialize(relay: Upstream) -> None:
    """The 2025-11-25 handshake over raw lines."""
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    await relay.stdin.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}).encode())
    await receive_json(relay.stdout, 1, START_TIMEOUT)
    await relay.stdin.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')


# --- issue 8: ids, late answers, smuggling ------------------------------------------------


@pytest.mark.parametrize("odd_id", [1.5, True, [1], {}, None, 2**53], ids=repr)
async def test_a_request_with_an_id_mcp_does_not_allow_is_refused_here(
    relay_on_pipes: RelayOnPipes, odd_id: object
) -> None:
    async with relay_on_pipes(Gate(hide={"secret"})) as pipes:
        await pipes.from_client({"jsonrpc": "2.0", "id": odd_id, "method": "tools/list"})
        error = await pipes.to_client()
        await pipes.from_client(ping(1))
        assert (await pipes.to_upstream())["id"] == 1  # the tools/list never went up
    assert error["id"] == odd_id and error["error"]["code"] == -32600  # type: ignore[index]


async def test_a_request_reusing_an_id_in_flight_is_refused_and_the_first_keeps_its_route(
    relay_on_pipes: RelayOnPipes,
) -> None:
    gate = Gate(hide={"secret"})
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.from_client({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})
        assert (await pipes.to_upstream())["method"] == "tools/list"
        await pipes.from_client(call(5, "echo"))
        refused = await pipes.to_client()
        assert refused["error"]["code"] == -32600 and "in use" in refused["error"]["message"]  # type: ignore[index]
        tools = [{"name": "echo"}, {"name": "secret"}]
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 5, "result": {"tools": tools}})
        listed = await pipes.to_client()
    assert listed["result"] == {"tools": [{"name": "echo"}]}  # still filtered as the tools/list it answers
    assert gate.calls == []


async def test_answers_to_unknown_ids_and_late_answers_to_private_requests_are_never_relayed(
    relay_on_pipes: RelayOnPipes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("regogate.proxy.relay._tools.TOOL_DISCOVERY_TIMEOUT", 0.2)
    gate = Gate(hide={"secret"})
    async with relay_on_pipes(gate) as pipes:
        await pipes.handshake()
        await pipes.from_client(call(6, "echo"))
        private = await pipes.to_upstream()
        assert private["method"] == "tools/list"
        assert (await pipes.to_upstream())["id"] == 6  # decided without the listing after the timeout
        late = {"tools": [{"name": "secret"}]}
        await pipes.from_upstream({"jsonrpc": "2.0", "id": private["id"], "result": late})
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 999, "result": late})
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 6, "result": {"content": []}})
        answer = await pipes.to_client()
    assert answer["id"] == 6  # nothing came before it


async def test_the_issue_8_ping_smuggling_a_call_never_reaches_the_upstream(relay_on_pipes: RelayOnPipes) -> None:
    inner = b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{}}}'
    smuggler = b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"p":\r' + inner + b"\r}}"
    gate = Gate(deny={"echo"})
    async with relay_on_pipes(gate) as pipes:
        await pipes.from_client(smuggler)
        refused = await pipes.to_client()
        await pipes.from_client(ping(5))
        with anyio.fail_after(5):
            assert await pipes.upstream_receive.receive() == b'{"jsonrpc":"2.0","id":5,"method":"ping"}'
    assert refused["id"] == 3 and "CR" in refused["error"]["message"]  # type: ignore[index]


async def test_a_server_answer_too_deep_or_ambiguous_becomes_an_error_for_its_request(
    relay_on_pipes: RelayOnPipes,
) -> None:
    async with relay_on_pipes(Gate()) as pipes:
        for n, bad in enumerate([b"[" * 2000 + b"]" * 2000, b'{"tools":[],"tools":[{"name":"x"}]}'], start=1):
            await pipes.from_client({"jsonrpc": "2.0", "id": n, "method": "tools/list"})
            await pipes.to_upstream()
            await pipes.from_upstream(b'{"jsonrpc":"2.0","id":%d,"result":' % n + bad + b"}")
            error = await pipes.to_client()
            assert error["id"] == n and error["error"]["code"] == -31001  # type: ignore[index]
        await pipes.from_upstream(
            b'{"jsonrpc":"2.0","method":"notifications/message","params":' + b"[" * 2000 + b"]" * 2000 + b"}"
        )
        await pipes.from_client(ping(9))
        assert (await pipes.to_upstream())["id"] == 9
        await pipes.from_upstream({"jsonrpc": "2.0", "id": 9, "result": {}})
        assert (await pipes.to_client())["id"] == 9  # the deep notification was dropped, the session goes on


async def test_a_refused_client_answer_to_a_server_request_gets_the_server_an_error(
    relay_on_pipes: RelayOnPipes,
) -> None:
    async with relay_on_pipes(Gate()) as pipes:
        await pipes.from_upstream({"jsonrpc": "2.0", "id": "s1", "method": "roots/list"})
        await pipes.to_client()
        await pipes.from_client(b'{"jsonrpc":"2.0","id":"s1","result":{"roots":[],"roots":[{"uri":"file:///"}]}}')
        error = await pipes.to_upstream()
    assert error["id"] == "s1" and error["error"]["code"] == -32600  # type: ignore[index]
