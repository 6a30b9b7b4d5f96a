"""Run the real `regogate` command between the real `mcp` SDK client and a real MCP server."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from mcp import StdioServerParameters
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from tests.conftest import ROOT, find_opa_binary

REGOGATE = str(Path(sys.executable).parent / "regogate")
SERVERS = ROOT / "tests" / "servers"
FILESYSTEM_SERVER = str(SERVERS / "node_modules" / ".bin" / "mcp-server-filesystem")
EVERYTHING_SERVER = str(SERVERS / "node_modules" / ".bin" / "mcp-server-everything")
TIME_SERVER = str(ROOT / ".venv-servers" / "bin" / "mcp-server-time")
STANDIN = [sys.executable, str(SERVERS / "python_standin.py")]
#: Our SDK server over stdio, listing its 9 tools 3 a page (no published server paginates tools/list).
PAGED_SERVER = [sys.executable, str(SERVERS / "http_server.py"), "--stdio", "--page-size", "3"]


@asynccontextmanager
async def gated_session(
    policy: str | Path, upstream: Sequence[str], *flags: str, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized SDK session whose server is `regogate -c POLICY FLAGS -- UPSTREAM`."""
    environment = {**os.environ, "REGOGATE_OPA": find_opa_binary(), **(env or {})}
    params = StdioServerParameters(command=REGOGATE, args=["-c", str(policy), *flags, "--", *upstream], env=environment)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text(result: CallToolResult) -> str:
    """The first text content of a tool result."""
    first = result.content[0]
    return str(getattr(first, "text", ""))


def processes_mentioning(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker` (a test's unique path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out += [int(p) for p in task.read_text().split()]
    return out


def command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
