"""The bridge as a user runs it: the SDK client on stdio, `regogate --upstream URL`, real HTTP servers, real OPA."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import pytest
from mcp import StdioServerParameters, types
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from tests.conftest import find_opa_binary
from tests.e2e.harness import REGOGATE, text
from tests.e2e.serve_harness import serve
from tests.http_servers import RunningServer, everything_http_server, python_http_server
from tests.loopback_tls import loopback_certificate

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 60  # one whole session; seconds here, slack for a loaded CI machine

POLICY = """\
version: "1"
hide: [count]
tools:
  echo:
    rules:
      - name: lowercase-only
        conditions:
          - path: args.text
            op: regex
            value: "^[a-z ]*$"
        on_deny: "Only lowercase letters may be echoed"
  shout:
    rules:
      - name: two-a-minute
        rate_limit: 2/minute
        on_deny: "Shouting budget spent"
"""

EVERYTHING_POLICY = """\
version: "1"
hide: [get-env]
tools:
  get-sum:
    rules:
      - name: small-sums
        conditions:
          - path: args.a
            op: lte
            value: 100
        on_deny: "Sums of big numbers are not allowed"
"""

BRIDGE_OVER_GATEWAY_POLICY = """\
version: "1"
tools:
  echo:
    rules:
      - name: lowercase-only
        conditions:
          - path: args.message
            op: regex
            value: "^[a-z ]*$"
        on_deny: "Only lowercase may be echoed"
"""


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sse_server() -> Iterator[RunningServer]:
    with python_http_server() as server:
        yield server


@asynccontextmanager
async def bridge(
    policy: Path,
    url: str,
    *flags: str,
    env: dict[str, str] | None = None,
    errlog: TextIO = sys.stderr,
    **callbacks: Any,
) -> AsyncIterator[ClientSession]:
    """An initialized SDK session whose server is `regogate -c POLICY --upstream URL FLAGS`."""
    environment = {**os.environ, "REGOGATE_OPA": find_opa_binary(), **(env or {})}
    params = StdioServerParameters(
        command=REGOGATE, args=["-c", str(policy), "--upstream", url, *flags], env=environment
    )
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write, **callbacks) as session:
        await session.initialize()
        yield session


def audit_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_allow_deny_and_hide_through_the_bridge(tmp_path: Path, sse_server: RunningServer) -> None:
    audit = tmp_path / "audit.jsonl"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with bridge(write(tmp_path, "p.yaml", POLICY), sse_server.url, "--audit-log", str(audit)) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            allowed = await session.call_tool("echo", {"text": "hello"})
            denied = await session.call_tool("echo", {"text": "DROP TABLE"})
    assert "count" not in names and {"echo", "slow", "big"} <= names
    assert not allowed.is_error and text(allowed) == "hello"
    assert denied.is_error and text(denied) == "[POLICY DENIED] Only lowercase letters may be echoed"
    events = audit_events(audit)
    assert events[0]["upstream"] == [sse_server.url]
    assert [e["allow"] for e in events if e["event"] == "decision"] == [True, False]


async def test_server_everything_allow_deny_hide_progress_sampling_and_elicitation(tmp_path: Path) -> None:
    steps: list[float] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled!"), model="m"
        )

    async def elicitation(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    with everything_http_server() as server, anyio.fail_after(SESSION_TIMEOUT):
        async with bridge(
            write(tmp_path, "e.yaml", EVERYTHING_POLICY),
            server.url,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
        ) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            small = await session.call_tool("get-sum", {"a": 1, "b": 2})
            big = await session.call_tool("get-sum", {"a": 1000, "b": 2})
            long = await session.call_tool(
                "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress
            )
            sampled = await session.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})
            elicited = await session.call_tool("trigger-elicitation-request", {})
    assert "get-env" not in names and "echo" in names
    assert text(small) == "The sum of 1 and 2 is 3."
    assert big.is_error and text(big) == "[POLICY DENIED] Sums of big numbers are not allowed"
    assert not long.is_error and steps == [1, 2, 3]
    assert "sampled!" in text(sampled)
    assert not elicited.is_error and "decline" in json.dumps([c.model_dump() for c in elicited.content])


async def test_sampling_from_the_get_stream_reaches_the_client(tmp_path: Path, sse_server: RunningServer) -> None:
    logged = anyio.Event()
    messages: list[object] = []

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="late"), model="m"
        )

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        messages.append(params.data)
        logged.set()

    with anyio.fail_after(SESSION_TIMEOUT):
        async with bridge(
            write(tmp_path, "p.yaml", POLICY), sse_server.url, sampling_callback=sampling, logging_callback=on_log
        ) as session:
            scheduled = await session.call_tool("sample_later", {"prompt": "x"})
            await logged.wait()
    assert text(scheduled) == "scheduled"
    assert messages == ["sampled later: late"]


async def test_two_bridges_sharing_a_store_share_one_budget(tmp_path: Path, sse_server: RunningServer) -> None:
    policy = write(tmp_path, "p.yaml", POLICY)
    state = f"sqlite:///{tmp_path / 'state.db'}"
    outcomes: list[bool] = []
    with anyio.fail_after(SESSION_TIMEOUT):
        async with (
            bridge(policy, sse_server.url, "--state", state) as one,
            bridge(policy, sse_server.url, "--state", state) as two,
        ):
            for session in (one, two, one, two):
                result = await session.call_tool("shout", {"text": "hey"})
                outcomes.append(not result.is_error)
                if result.is_error:
                    assert text(result) == "[POLICY DENIED] Shouting budget spent"
    assert outcomes == [True, True, False, False]


async def test_the_server_ending_the_session_ends_regogate(tmp_path: Path) -> None:
    import httpx

    with python_http_server() as server, anyio.fail_after(SESSION_TIMEOUT):
        async with bridge(write(tmp_path, "p.yaml", POLICY), server.url) as session:
            assert text(await session.call_tool("echo", {"text": "one"})) == "one"
            httpx.post(f"{server.base}/forget", timeout=10).raise_for_status()
            with pytest.raises(Exception) as caught:
                await session.call_tool("echo", {"text": "two"})
    assert "session ended" in str(caught.value)


async def test_the_server_going_away_mid_call_answers_and_rolls_back(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    policy = write(
        tmp_path, "p.yaml", POLICY.replace("  shout:", "  slow:\n    rules:\n      - rate_limit: 5/minute\n  shout:")
    )
    with python_http_server() as server, anyio.fail_after(SESSION_TIMEOUT):
        async with bridge(policy, server.url, "--audit-log", str(audit)) as session:
            started = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                started.set()

            async def kill_when_started() -> None:
                await started.wait()
                server.process.send_signal(signal.SIGKILL)

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_when_started)
                with pytest.raises(Exception) as caught:
                    await session.call_tool("slow", {"seconds": 60}, progress_callback=on_progress)
    assert "upstream" in str(caught.value)
    limits = [e["limit"] for e in audit_events(audit) if e["event"] == "limit"]
    assert limits == ["rolled_back"]


async def test_a_slow_server_fails_the_call_after_the_upstream_timeout(
    tmp_path: Path, sse_server: RunningServer
) -> None:
    with anyio.fail_after(SESSION_TIMEOUT):
        async with bridge(write(tmp_path, "p.yaml", POLICY), sse_server.url, "--upstream-timeout", "1") as session:
            with pytest.raises(Exception) as caught:
                await session.call_tool("slow", {"seconds": 10})
            assert text(await session.call_tool("echo", {"text": "still fine"})) == "still fine"
    assert "upstream timed out" in str(caught.value)


async def test_a_large_answer_passes_whole(tmp_path: Path, sse_server: RunningServer) -> None:
    with anyio.fail_after(SESSION_TIMEOUT):
        async with bridge(write(tmp_path, "p.yaml", POLICY), sse_server.url) as session:
            result = await session.call_tool("big", {"size": 8_000_000})
    assert len(text(result)) == 8_000_000


async def test_header_secrets_reach_the_server_and_never_the_logs(tmp_path: Path) -> None:
    secret = "tkn-4b1d9a7e2c"
    audit = tmp_path / "audit.jsonl"
    stderr_path = tmp_path / "stderr.txt"
    with (
        python_http_server("--token", secret) as server,
        anyio.fail_after(SESSION_TIMEOUT),
        stderr_path.open("w", encoding="utf-8") as errlog,
    ):
        async with bridge(
            write(tmp_path, "p.yaml", POLICY),
            f"{server.url}?key={secret}",
            "--header-env",
            "Authorization=BRIDGE_TOKEN",
            "--log-level",
            "debug",
            "--audit-log",
            str(audit),
            env={"BRIDGE_TOKEN": f"Bearer {secret}"},
            errlog=errlog,
        ) as session:
            assert text(await session.call_tool("echo", {"text": "ok"})) == "ok"
    logged = stderr_path.read_text(encoding="utf-8") + audit.read_text(encoding="utf-8")
    assert "upstream" in logged
    assert secret not in logged
    assert audit_events(audit)[0]["upstream_headers"] == ["Authorization"]


PRINCIPAL_POLICY = """\
version: "1"
tools:
  echo:
    rules:
      - name: payments-only
        conditions:
          - path: principal.team
            op: eq
            value: payments
        on_deny: "Only the payments team may echo"
      - name: two-each
        rate_limit: 2/hour
        per: principal
        on_deny: "Your echo budget is spent"
"""


async def test_limits_per_principal_through_two_bridges_sharing_a_store(
    tmp_path: Path, sse_server: RunningServer
) -> None:
    policy = write(tmp_path, "p.yaml", PRINCIPAL_POLICY)
    state = ("--state", f"sqlite:///{tmp_path / 'state.db'}")
    who = tmp_path / "bob.json"
    who.write_text('{"id": "bob", "team": "payments"}', encoding="utf-8")
    outcomes: dict[str, list[bool]] = {"alice": [], "bob": [], "carol": []}
    with anyio.fail_after(SESSION_TIMEOUT):
        async with (
            bridge(policy, sse_server.url, *state, "--principal", "id=alice", "--principal", "team=payments") as alice,
            bridge(policy, sse_server.url, *state, "--principal-file", str(who)) as bob,
            bridge(
                policy, sse_server.url, *state, env={"REGOGATE_PRINCIPAL": '{"id": "carol", "team": "search"}'}
            ) as carol,
        ):
            for name, session in (("alice", alice), ("bob", bob)) * 3 + (("carol", carol),):
                result = await session.call_tool("echo", {"text": "hi"})
                outcomes[name].append(not result.is_error)
                if name == "carol":
                    assert text(result) == "[POLICY DENIED] Only the payments team may echo"
    assert outcomes == {"alice": [True, True, False], "bob": [True, True, False], "carol": [False]}
    # status tells the callers apart: each has a counter of their own, the refused calls not counted.
    status = [REGOGATE, "status", "-c", str(policy), *state]
    out = subprocess.run([*status, "--json"], capture_output=True, text=True, timeout=SESSION_TIMEOUT, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    used = {row["principal"]: row["used"] for row in rows if row["kind"] == "counter" and row["rule"] == "two-each"}
    assert used == {"alice": 2, "bob": 2}
    table = subprocess.run(status, capture_output=True, text=True, timeout=SESSION_TIMEOUT, check=True).stdout
    assert [line.split()[-1] for line in table.splitlines() if line.startswith("echo")] == ["alice", "bob"]


async def test_the_bridge_speaks_tls_to_a_server_it_trusts_and_to_no_other(tmp_path: Path) -> None:
    cert, key = loopback_certificate(tmp_path)
    bridge_policy = write(tmp_path, "bridge.yaml", BRIDGE_OVER_GATEWAY_POLICY)
    gateway_policy = write(tmp_path, "gateway.yaml", EVERYTHING_POLICY)
    errors = tmp_path / "untrusted.log"
    with serve(gateway_policy, "--state", "memory", "--tls-cert", str(cert), "--tls-key", str(key)) as gw:
        assert gw.url.startswith("https://127.0.0.1:")
        with anyio.fail_after(SESSION_TIMEOUT):
            async with bridge(bridge_policy, gw.url, "--state", "memory", env={"SSL_CERT_FILE": str(cert)}) as session:
                names = {t.name for t in (await session.list_tools()).tools}
                small = await session.call_tool("get-sum", {"a": 1, "b": 2})
                big = await session.call_tool("get-sum", {"a": 1000, "b": 2})
                loud = await session.call_tool("echo", {"message": "LOUD"})
        with (
            anyio.fail_after(SESSION_TIMEOUT),
            errors.open("w", encoding="utf-8") as errlog,
            pytest.raises(Exception) as untrusted,  # the SDK wraps the bridge's error answer its own way
        ):
            async with bridge(bridge_policy, gw.url, "--state", "memory", errlog=errlog):
                pass
    assert "get-env" not in names and "get-sum" in names  # the gateway's hide reaches the bridge's client
    assert not small.is_error and "3" in text(small)
    assert big.is_error and text(big) == "[POLICY DENIED] Sums of big numbers are not allowed"  # the gateway's rule
    assert loud.is_error and text(loud) == "[POLICY DENIED] Only lowercase may be echoed"  # the bridge's own rule
    assert "CERTIFICATE_VERIFY_FAILED" in str(untrusted.value) + errors.read_text(encoding="utf-8")
