"""`regogate serve` as a team runs it: real SDK clients over Streamable HTTP, server-everything per session,
real OPA."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.conftest import POLICIES, alive
from tests.e2e.harness import EVERYTHING_SERVER, STANDIN, children, command_line, text
from tests.e2e.serve_harness import HEADERS, INITIALIZE, Gateway, mcp_session, serve
from tests.loopback_tls import loopback_certificate

pytestmark = pytest.mark.anyio

TIMEOUT = 90  # one whole test; seconds, slack for a loaded CI machine

POLICY = """\
version: "1"
hide: [get-env]
tools:
  echo:
    rules:
      - name: lowercase-only
        conditions:
          - path: args.message
            op: regex
            value: "^[a-z ]*$"
        on_deny: "Only lowercase letters may be echoed"
  trigger-long-running-operation:
    rules:
      - name: few-long-ones
        rate_limit: 3/minute
        on_deny: "Long operations budget spent"
"""


def policy_file(tmp_path: Path, content: str = POLICY) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(content, encoding="utf-8")
    return path


def audit_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def upstream_pids(gw: Gateway) -> list[int]:
    return [pid for pid in children(gw.process.pid) if "mcp-server-everything" in command_line(pid)]


async def test_allow_deny_and_hide_over_http_with_the_sdk_client(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with serve(policy_file(tmp_path), "--state", "memory", "--audit-log", str(audit)) as gw, anyio.fail_after(TIMEOUT):
        async with mcp_session(gw.url) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            allowed = await session.call_tool("echo", {"message": "hello"})
            denied = await session.call_tool("echo", {"message": "DROP TABLE"})
    assert "get-env" not in names and "echo" in names
    assert not allowed.is_error and text(allowed) == "Echo: hello"
    assert denied.is_error and text(denied) == "[POLICY DENIED] Only lowercase letters may be echoed"
    events = audit_events(audit)
    assert [e["allow"] for e in events if e["event"] == "decision"] == [True, False]
    assert any(e["event"] == "listening" and e["url"] == gw.url for e in events)


def test_requests_from_the_wrong_place_or_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    with serve(policy_file(tmp_path), "--state", "memory", "--max-body", "4096") as gw, httpx.Client() as http:
        first = http.post(gw.url, json=INITIALIZE, headers=HEADERS, timeout=30)
        assert first.status_code == 200 and first.headers["cache-control"] == "private, no-store"
        session = first.headers["mcp-session-id"]
        assert len(session) >= 43 and first.json()["result"]["serverInfo"]
        with_session = {**HEADERS, "mcp-session-id": session}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}

        evil = http.post(gw.url, json=ping, headers={**with_session, "origin": "http://evil.example"})
        assert evil.status_code == 403 and "Origin" in evil.json()["error"]["message"]
        rebound = http.post(gw.url, json=ping, headers={**with_session, "host": f"evil.example:{gw.url.split(':')[2]}"})
        assert rebound.status_code == 421
        local_origin = http.post(gw.url, json=ping, headers={**with_session, "origin": gw.base})
        assert local_origin.status_code == 200 and local_origin.json()["result"] == {}

        big = {"jsonrpc": "2.0", "id": 3, "method": "ping", "params": {"pad": "x" * 5000}}
        assert http.post(gw.url, json=big, headers=with_session).status_code == 413
        deep = b'{"jsonrpc":"2.0","id":4,"method":"ping","params":' + b'{"a":' * 150 + b"1" + b"}" * 151
        nested = http.post(gw.url, content=deep, headers=with_session)
        assert nested.status_code == 400 and "nested deeper" in nested.json()["error"]["message"]
        duplicate = b'{"jsonrpc":"2.0","id":5,"id":6,"method":"ping"}'
        assert http.post(gw.url, content=duplicate, headers=with_session).status_code == 400
        batch = http.post(gw.url, json=[ping, ping], headers=with_session)
        assert batch.status_code == 400 and "batches" in batch.json()["error"]["message"]
        assert http.post(gw.url, content=b"{", headers=with_session).json()["error"]["code"] == -32700
        plain = http.post(gw.url, content=json.dumps(ping), headers={**with_session, "content-type": "text/plain"})
        assert plain.status_code == 415

        def pieces(data: bytes, size: int) -> Iterator[bytes]:  # a chunked body, without Content-Length
            yield from (data[i : i + size] for i in range(0, len(data), size))

        pinged = http.post(gw.url, content=pieces(json.dumps(ping).encode(), 7), headers=with_session)
        assert pinged.status_code == 200 and pinged.json()["result"] == {}
        chunked_big = http.post(gw.url, content=pieces(json.dumps(big).encode(), 1000), headers=with_session)
        assert chunked_big.status_code == 413
        port = int(gw.url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as cut:  # leaves within its body
            head = f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            head += f"accept: application/json\r\nmcp-session-id: {session}\r\ncontent-length: 200\r\n\r\n"
            cut.sendall(head.encode() + b'{"jsonrpc":"2.0",')
        assert http.post(gw.url, json=ping, headers=with_session).json()["result"] == {}

        assert http.post(gw.url, json=ping, headers=HEADERS).status_code == 400  # no session id
        # One character off (an id that already ends in "A" must not be "guessed" as itself).
        off_by_one = session[:-1] + ("B" if session.endswith("A") else "A")
        guessed = http.post(gw.url, json=ping, headers={**HEADERS, "mcp-session-id": off_by_one})
        assert guessed.status_code == 404
        assert http.get(f"{gw.base}/healthz").json() == {"status": "ok"}
        assert http.get(f"{gw.base}/readyz").json() == {"status": "ready"}

        assert http.delete(gw.url, headers=with_session).status_code == 200
        assert http.post(gw.url, json=ping, headers=with_session).status_code == 404
        assert "Traceback" not in gw.read_stderr(timeout=1.0)


async def test_fifty_sessions_with_calls_in_flight_each_get_their_own_answers(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    flags = ("--state", "memory", "--audit-log", str(audit), "--max-sessions", "50")
    answers: dict[int, tuple[str, str]] = {}
    with serve(policy_file(tmp_path), *flags) as gw, anyio.fail_after(TIMEOUT * 2):

        async def one(n: int) -> None:
            word = "abcdefghij"[n % 10] * (n + 1)
            async with mcp_session(gw.url) as session, anyio.create_task_group() as tg:
                results: dict[str, str] = {}

                async def call(message: str) -> None:
                    results[message] = text(await session.call_tool("echo", {"message": message}))

                tg.start_soon(call, word)
                tg.start_soon(call, word.upper())
            answers[n] = (results[word], results[word.upper()])

        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(one, n)
    assert len(answers) == 50
    for n, (ok, no) in answers.items():
        assert ok == "Echo: " + "abcdefghij"[n % 10] * (n + 1)
        assert no == "[POLICY DENIED] Only lowercase letters may be echoed"
    decisions = [e for e in audit_events(audit) if e["event"] == "decision"]
    assert len(decisions) == 100 and sum(e["allow"] for e in decisions) == 50


def flattened(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(flattened(inner) for inner in exc.exceptions)
    return str(exc)


async def test_sessions_beyond_the_cap_are_refused_with_the_reason(tmp_path: Path) -> None:
    with serve(policy_file(tmp_path), "--state", "memory", "--max-sessions", "1") as gw, anyio.fail_after(TIMEOUT):
        async with mcp_session(gw.url) as first:
            with pytest.raises(BaseException) as refused:
                async with mcp_session(gw.url):
                    pass
            assert text(await first.call_tool("echo", {"message": "still served"})) == "Echo: still served"
        assert "too many sessions (1)" in flattened(refused.value)
        async with mcp_session(gw.url) as again:  # the first one's DELETE freed its place
            assert text(await again.call_tool("echo", {"message": "next"})) == "Echo: next"


async def test_an_upstream_that_dies_answers_the_call_in_flight_and_ends_only_its_session(tmp_path: Path) -> None:
    with serve(policy_file(tmp_path), "--state", "memory") as gw, anyio.fail_after(TIMEOUT):
        async with mcp_session(gw.url) as victim:
            (pid,) = upstream_pids(gw)
            started = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                started.set()

            async def kill_when_started() -> None:
                await started.wait()
                os.kill(pid, signal.SIGKILL)

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_when_started)
                with pytest.raises(MCPError, match="upstream server is gone"):
                    await victim.call_tool(
                        "trigger-long-running-operation", {"duration": 30, "steps": 30}, progress_callback=on_progress
                    )
            with pytest.raises(MCPError):
                await victim.call_tool("echo", {"message": "still there"})
            async with mcp_session(gw.url) as other:
                assert text(await other.call_tool("echo", {"message": "fine"})) == "Echo: fine"


async def test_shutdown_drains_the_call_in_flight_and_settles_its_counter(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with serve(policy_file(tmp_path), "--state", "memory", "--audit-log", str(audit)) as gw, anyio.fail_after(TIMEOUT):
        async with mcp_session(gw.url) as session:
            await session.list_tools()  # the SDK checks results against the listed schemas: no list after the stop
            started = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                started.set()

            async def stop_when_started() -> None:
                await started.wait()
                gw.process.send_signal(signal.SIGTERM)

            async with anyio.create_task_group() as tg:
                tg.start_soon(stop_when_started)
                result = await session.call_tool(
                    "trigger-long-running-operation", {"duration": 2, "steps": 4}, progress_callback=on_progress
                )
            pids = upstream_pids(gw)
        status = gw.process.wait(20)
    assert not result.is_error and "completed" in text(result).lower()
    assert status == 0
    assert not [pid for pid in pids if alive(pid)]
    events = audit_events(audit)
    assert [e["limit"] for e in events if e["event"] == "limit"] == ["committed"]
    assert events[-1]["event"] == "shutdown"


async def test_an_idle_session_is_closed_with_its_upstream(tmp_path: Path) -> None:
    with serve(policy_file(tmp_path), "--state", "memory", "--idle-timeout", "2") as gw, anyio.fail_after(TIMEOUT):
        async with mcp_session(gw.url) as session:
            pids = upstream_pids(gw)  # started for this session by its initialize
            deadline = time.monotonic() + 15
            while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            assert pids and not any(alive(pid) for pid in pids)
            with pytest.raises(MCPError):
                await session.call_tool("echo", {"message": "too late"})


async def test_an_auto_mode_probe_keeps_no_upstream_once_the_server_turns_it_down(tmp_path: Path) -> None:
    """The SDK client's default mode first sends ``server/discover`` without a session; server-everything
    does not speak 2026-07-28 and refuses it, and the client falls back to a session of its own. The
    upstream lent for the probe must go at once, not sit idle until --idle-timeout; the next client's
    probe gets the same refusal without an upstream started for it."""
    audit = tmp_path / "audit.jsonl"
    starts = tmp_path / "starts"
    upstream = ("sh", "-c", f'echo start >> "{starts}"; exec "{EVERYTHING_SERVER}"')
    flags = ("--state", "memory", "--idle-timeout", "600", "--audit-log", str(audit))
    with serve(policy_file(tmp_path), *flags, upstream=upstream) as gw, anyio.fail_after(TIMEOUT):
        async with Client(gw.url) as client:  # mode "auto"
            version = client.protocol_version
            echoed = await client.call_tool("echo", {"message": "hello"})
            pids = upstream_pids(gw)
            deadline = time.monotonic() + 20
            while len(pids) > 1 and time.monotonic() < deadline:
                await anyio.sleep(0.1)
                pids = upstream_pids(gw)
            again = await client.call_tool("echo", {"message": "still here"})
        async with Client(gw.url) as second:
            second_version = second.protocol_version
            echoed_second = await second.call_tool("echo", {"message": "second"})
        started = starts.read_text(encoding="utf-8").split()
    assert version == second_version != "2026-07-28"
    assert "hello" in text(echoed) and "still here" in text(again) and "second" in text(echoed_second)
    assert len(pids) == 1  # the session's own; the probe's upstream is gone
    assert len(started) == 3  # the first probe's, then one per session: none for the second probe
    decided = [e["allow"] for e in audit_events(audit) if e["event"] == "decision"]
    assert decided == [True, True, True]


async def test_a_cancelled_call_ends_its_http_answer_and_the_session_goes_on(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with serve(policy_file(tmp_path), "--state", "memory", "--audit-log", str(audit)) as gw, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(timeout=30) as http:
            first = await http.post(gw.url, json=INITIALIZE, headers=HEADERS)
            with_session = {**HEADERS, "mcp-session-id": first.headers["mcp-session-id"]}
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(gw.url, json=initialized, headers=with_session)).status_code == 202
            call = {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {
                    "name": "trigger-long-running-operation",
                    "arguments": {"duration": 20, "steps": 20},
                    "_meta": {"progressToken": "p7"},
                },
            }
            events: list[dict[str, Any]] = []
            cancelled = False
            async with http.stream("POST", gw.url, json=call, headers=with_session) as answer:
                assert answer.headers["content-type"].startswith("text/event-stream")
                async for line in answer.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    events.append(json.loads(line[6:]))
                    if [e.get("method") for e in events].count("notifications/progress") == 1 and not cancelled:
                        cancelled = True
                        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
                        assert (await http.post(gw.url, json=cancel, headers=with_session)).status_code == 202
            ping = await http.post(gw.url, json={"jsonrpc": "2.0", "id": 8, "method": "ping"}, headers=with_session)
    progress = [e for e in events if e.get("method") == "notifications/progress"]
    assert progress and all(e["params"]["progressToken"] == "p7" for e in progress)
    assert events[-1] == {"jsonrpc": "2.0", "id": 7, "error": {"code": -32800, "message": "request cancelled"}}
    assert ping.json()["result"] == {}
    decisions = [e for e in audit_events(audit) if e["event"] == "decision"]
    assert [e["allow"] for e in decisions] == [True]  # decided once, forwarded, then withdrawn by the client


async def test_a_person_approves_in_a_form_over_http_while_a_client_that_cannot_ask_is_told_how(
    tmp_path: Path,
) -> None:
    """The approval form travels in the call's own HTTP answer (an event stream) and the person's answer in a POST
    of its own, while the call waits for it; a client that cannot ask its user gets the out-of-band approval id."""
    forms: list[str] = []

    async def person(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        forms.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": "numpy" in params.message, "reason": "e2e"})

    flags = ("--state", f"sqlite:///{tmp_path}/state.db")
    policy = POLICIES / "python-approval.yaml"
    with serve(policy, *flags, upstream=tuple(STANDIN)) as gw, anyio.fail_after(TIMEOUT):
        async with mcp_session(gw.url, elicitation_callback=person) as asking, mcp_session(gw.url) as silent:
            yes = await asking.call_tool("conda", {"command": "remove numpy"})
            no = await asking.call_tool("conda", {"command": "rm y"})
            plain = await asking.call_tool("black", {"path": "src"})
            pending = await silent.call_tool("conda", {"command": "remove numpy"})
            quiet_plain = await silent.call_tool("black", {"path": "src"})
    assert not yes.is_error and text(yes) == "(stand-in) would run: conda remove numpy"
    assert no.is_error and "The user said no" in text(no)
    assert len(forms) == 2 and all("conda-needs-approval" in form for form in forms)
    assert pending.is_error and "regogate approvals approve" in text(pending)
    assert text(plain) == text(quiet_plain) == "(stand-in) would run: black src"


def test_tls_from_a_cert_and_key(tmp_path: Path) -> None:
    cert_file, key_file = loopback_certificate(tmp_path)
    flags = ("--state", "memory", "--tls-cert", str(cert_file), "--tls-key", str(key_file))
    with serve(policy_file(tmp_path), *flags) as gw:
        assert gw.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert_file)), timeout=30) as http:
            first = http.post(gw.url, json=INITIALIZE, headers=HEADERS)
            assert first.status_code == 200 and first.json()["result"]["serverInfo"]
            evil = http.post(gw.url, json=INITIALIZE, headers={**HEADERS, "origin": gw.base.replace("https", "http")})
            assert evil.status_code == 403  # the plain-http origin is another origin
        with pytest.raises(httpx.TransportError):
            httpx.get(gw.base.replace("https", "http") + "/healthz", timeout=5)
