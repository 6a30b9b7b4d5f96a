"""A policy-filtered tools/list is private to its caller where the protocol has cache scopes (2026-07-28).

The upstream is our SDK server telling every cache it may share its tool list (``cacheScope: public``);
the real SDK client, through the real `regogate`, must be told the list is ``private``: what it holds
depends on who asked. Older eras have no cache scope and their answers keep their shape.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import StdioServerParameters
from mcp.client import Client

from tests.conftest import find_opa_binary
from tests.e2e.harness import REGOGATE, SERVERS
from tests.e2e.wire import raw_regogate

pytestmark = pytest.mark.anyio

TIMEOUT = 60  # one whole test; seconds, slack for a loaded CI machine
PUBLIC_SERVER = [sys.executable, str(SERVERS / "http_server.py"), "--stdio", "--public-tools", "60000"]
POLICY = """\
version: "1"
hide: [count]
"""


def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


async def test_a_modern_client_is_told_the_filtered_list_is_private(tmp_path: Path) -> None:
    environment = {**os.environ, "REGOGATE_OPA": find_opa_binary()}
    params = StdioServerParameters(
        command=REGOGATE, args=["-c", str(policy_file(tmp_path)), "--", *PUBLIC_SERVER], env=environment
    )
    with anyio.fail_after(TIMEOUT):
        async with Client(params, mode="2026-07-28") as client:
            listed = await client.list_tools()
            direct = await client.call_tool("echo", {"text": "still relayed"})
    names = {tool.name for tool in listed.tools}
    assert "echo" in names and "count" not in names
    assert listed.cache_scope == "private"
    assert listed.ttl_ms == 60000  # the server's freshness hint stands; only who may share it changes
    assert not direct.is_error


async def test_a_legacy_session_gets_no_cache_scope_added(tmp_path: Path) -> None:
    async with raw_regogate(policy_file(tmp_path), PUBLIC_SERVER, tmp_path / "stderr.log") as raw:
        await raw.handshake()
        await raw.send_json({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        answer = await raw.answer(2)
    result = answer["result"]
    assert isinstance(result, dict) and "echo" in {tool["name"] for tool in result["tools"]}
    assert "count" not in {tool["name"] for tool in result["tools"]}
    assert "cacheScope" not in result and "ttlMs" not in result and "resultType" not in result
