"""A real MCP session through regogate: the SDK client spawns ``regogate -c POLICY -- SERVER`` over stdio."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from mcp import StdioServerParameters
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from regogate.testing._assertions import decision_of

__all__ = ["GatedSession", "open_gated_session", "regogate_command"]


def regogate_command() -> str:
    """The ``regogate`` script of the running interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "regogate"
    found = str(beside) if beside.is_file() else shutil.which("regogate")
    if found is None:
        raise FileNotFoundError("no regogate command next to this Python or on PATH: pip install 'regogate[testing]'")
    return found


class GatedSession(ClientSession):
    """The SDK's ``ClientSession``, talking to a server through regogate, that also reads regogate's audit log."""

    audit_log: Path

    def _track(self, audit_log: Path) -> None:
        self.audit_log = audit_log
        self._decisions: dict[int, tuple[object, set[str]]] = {}

    async def call_tool(self, *args: Any, **kwargs: Any) -> Any:
        """``ClientSession.call_tool``; also notes which audited decisions the call produced."""
        before = {e["decision_id"] for e in self._events() if e.get("event") == "decision"}
        result = await super().call_tool(*args, **kwargs)
        after = {e["decision_id"] for e in self._events() if e.get("event") == "decision"}
        self._decisions[id(result)] = (result, after - before)
        return result

    def _events(self) -> list[dict[str, Any]]:
        events = []
        with suppress(FileNotFoundError), self.audit_log.open(encoding="utf-8") as lines:
            for line in lines:
                with suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict):
                        events.append(event)
        return events

    def audit_entries(self, result: CallToolResult) -> list[dict[str, Any]]:
        """The audit events (decision, limit outcome) of the call that returned ``result``.

        A denial names its decision; for an allowed call these are the decisions audited while it
        ran, so keep calls sequential when reading their entries.
        """
        decision = decision_of(result)
        if decision is not None:
            ids = {str(decision.get("decision_id"))}
        else:
            ids = self._decisions.get(id(result), (None, set()))[1]
        return [e for e in self._events() if e.get("decision_id") in ids]


@asynccontextmanager
async def open_gated_session(
    policy: str | Path,
    server: Sequence[str],
    *,
    workdir: Path,
    opa_url: str | None = None,
    flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[GatedSession]:
    """An initialized session whose server is ``regogate -c POLICY [--opa-url URL] FLAGS -- SERVER``."""
    audit = workdir / f"regogate-audit-{uuid.uuid4().hex[:8]}.jsonl"
    args = ["-c", str(policy), "--audit-log", str(audit)]
    if opa_url is not None:
        args += ["--opa-url", opa_url]
    params = StdioServerParameters(
        command=regogate_command(), args=[*args, *flags, "--", *server], env={**os.environ, **(env or {})}
    )
    async with stdio_client(params) as (read, write):
        session = GatedSession(read, write)
        session._track(audit)
        async with session:
            await session.initialize()
            yield session
