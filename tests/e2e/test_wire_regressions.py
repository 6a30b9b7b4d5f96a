"""Issue 8's wire defects, reproduced exactly through the real CLI, real OPA and real servers.

Each server is wrapped by the wire recorder (tests/servers/wire_recorder.py), so the
test sees the bytes the server read and every answer it wrote, including answers
regogate would drop: a smuggled call that ran shows up there.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from tests.conftest import POLICIES
from tests.e2e.harness import STANDIN, TIME_SERVER
from tests.e2e.wire import raw_regogate, recorder

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 120

TIME_POLICY = """\
version: "1"
default: allow
tools:
  get_current_time:
    rules:
      - action: deny
        on_deny: "the clock is off limits"
"""

RECORDER_POLICY = """\
version: "1"
default: allow
hide:
  - hidden
tools:
  danger:
    rules:
      - action: deny
        on_deny: "danger is off limits"
  slow:
    rules:
      - action: allow
        rate_limit: 3/day
"""


def smuggling(carrier: bytes, inner: bytes) -> bytes:
    """``carrier`` (a JSON object missing its last ``}``) with ``inner`` hidden behind CRs as a member value."""
    return carrier + b',"x":\r' + inner + b"\r}\n"


def call(request_id: int, name: str, arguments: dict[str, object]) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    return json.dumps(message).encode()


CASES = {
    "mcp-server-time": (
        [TIME_SERVER],
        TIME_POLICY,
        call(4, "get_current_time", {"timezone": "UTC"}),
        call(6, "convert_time", {"source_timezone": "UTC", "time": "10:00", "target_timezone": "UTC"}),
    ),
    "python-stand-in": (STANDIN, None, call(4, "conda", {"command": "remove --all"}), call(6, "black", {"path": "."})),
}


@pytest.mark.parametrize("server", sorted(CASES))
async def test_a_denied_call_hidden_behind_crs_in_any_carrier_never_runs(tmp_path: Path, server: str) -> None:
    command, policy_text, denied, allowed = CASES[server]
    policy = POLICIES / "python.yaml"
    if policy_text is not None:
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text, encoding="utf-8")
    log = tmp_path / "wire"
    carriers = [
        b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"p":1}',  # the example
        allowed[:-1],  # an allowed call's arguments object... and its envelope
        b'{"jsonrpc":"2.0","id":"srv-1","result":{"roots":[]}',  # a client's answer to a server request
    ]
    with anyio.fail_after(SESSION_TIMEOUT):
        async with raw_regogate(policy, recorder(log, *command), tmp_path / "stderr") as session:
            await session.handshake()
            exact = b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"p":\r' + denied + b"\r}}\n"
            await session.send(exact)
            assert (await session.answer(3))["error"]["code"] == -32600  # type: ignore[index]
            for carrier in carriers[1:]:
                await session.send(smuggling(carrier, denied))
            assert (await session.answer(6))["result"]["isError"] is True  # type: ignore[index]
            await session.send(allowed + b"\n")  # the same call, clean, goes through
            await session.until(lambda _: len(session.answers(6)) == 2)
            clean = session.answers(6)[1]["result"]
            assert isinstance(clean, dict) and clean.get("isError") is not True
            await session.close()  # the tee'd server's own exit status is not the point
    server_read = log.with_suffix(".in").read_bytes()
    server_wrote = [json.loads(line) for line in log.with_suffix(".out").read_bytes().splitlines() if line.strip()]
    assert b"\r" not in server_read
    assert not [m for m in server_wrote if m.get("id") == 4], "the denied call ran"
    assert not session.answers(4)
    assert "Traceback" not in (tmp_path / "stderr").read_text(encoding="utf-8")


async def test_other_encodings_and_byte_order_marks_are_parse_errors_and_never_reach_the_server(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(RECORDER_POLICY, encoding="utf-8")
    log = tmp_path / "wire"
    danger = '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"danger","arguments":{}}}'
    lines = [b"\xef\xbb\xbf" + danger.encode(), danger.encode("utf-16"), danger.encode("utf-32-le")]
    with anyio.fail_after(SESSION_TIMEOUT):
        async with raw_regogate(policy, recorder(log), tmp_path / "stderr") as session:
            await session.handshake()
            for line in lines:
                await session.send(line + b"\n")
            await session.send(b'{"jsonrpc":"2.0","id":10,"method":"ping"}\n')
            await session.answer(10)
            assert await session.close() == 0
    errors = [m for m in session.received if "error" in m]
    assert len(errors) >= len(lines) and all(e["error"]["code"] == -32700 for e in errors)  # type: ignore[index]
    assert log.with_suffix(".calls").read_text(encoding="utf-8") == ""
    assert b"danger" not in log.with_suffix(".in").read_bytes()


async def test_deep_nesting_from_the_client_is_an_error_for_its_id_and_the_session_goes_on(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(RECORDER_POLICY, encoding="utf-8")
    log = tmp_path / "wire"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with raw_regogate(policy, recorder(log), tmp_path / "stderr") as session:
            await session.handshake()
            await session.send(
                b'{"jsonrpc":"2.0","id":3,"method":"ping","params":' + b"[" * 1000 + b"]" * 1000 + b"}\n"
            )
            deep = await session.answer(3)
            await session.send(call(4, "safe", {}) + b"\n")
            ran = await session.answer(4)
            assert await session.close() == 0
    assert deep["error"]["code"] == -32600 and "nested deeper" in deep["error"]["message"]  # type: ignore[index]
    assert ran["result"]["content"][0]["text"] == "ran safe"  # type: ignore[index]
    assert "RecursionError" not in (tmp_path / "stderr").read_text(encoding="utf-8")


@pytest.mark.parametrize("odd_id", [1.5, True, [1], {}], ids=repr)
async def test_a_tools_list_never_reveals_a_hidden_tool_whatever_its_id(tmp_path: Path, odd_id: object) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(RECORDER_POLICY, encoding="utf-8")
    log = tmp_path / "wire"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with raw_regogate(policy, recorder(log), tmp_path / "stderr") as session:
            await session.handshake()
            await session.send_json({"jsonrpc": "2.0", "id": odd_id, "method": "tools/list"})
            # the listing stays in flight (the recorder answers it late), so the call reuses a live id
            await session.send_json({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"cursor": "slow"}})
            await session.send_json({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "safe"}})
            await session.until(lambda _: len(session.answers(7)) == 2 and bool(session.answers(odd_id)))
            assert await session.close() == 0
    assert session.answers(odd_id)[0]["error"]["code"] == -32600  # type: ignore[index]
    listed = [a for a in session.answers(7) if "result" in a]
    assert [t["name"] for t in listed[0]["result"]["tools"]] == ["safe", "danger", "slow"]  # type: ignore[index]
    assert "hidden" not in json.dumps(session.received) and "regogate:" not in json.dumps(session.received)
    assert log.with_suffix(".calls").read_text(encoding="utf-8") == ""  # the call sharing id 7 never went up


async def test_cancelling_forwarded_calls_does_not_lift_a_rate_limit(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(RECORDER_POLICY, encoding="utf-8")
    log = tmp_path / "wire"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with raw_regogate(policy, recorder(log), tmp_path / "stderr", "--state", "memory") as session:
            await session.handshake()
            calls = log.with_suffix(".calls")

            def ran() -> int:
                return calls.read_text(encoding="utf-8").count("\n") if calls.exists() else 0

            for n in range(10):
                before = ran()
                await session.send(call(100 + n, "slow", {}) + b"\n")
                # The cancel must come after the server started the call (or after the denial).
                await session.until(lambda _: bool(session.answers(100 + n)) or ran() > before)  # noqa: B023
                cancel: dict[str, object] = {
                    "jsonrpc": "2.0",
                    "method": "notifications/cancelled",
                    "params": {"requestId": 100 + n},
                }
                await session.send_json(cancel)
            await session.send_json({"jsonrpc": "2.0", "id": "end", "method": "ping"})
            await session.answer("end")
            assert await session.close() == 0
    executed = log.with_suffix(".calls").read_text(encoding="utf-8").split()
    assert len(executed) <= 3, f"{len(executed)} calls ran under a 3/day limit"
