"""regogate's own Streamable HTTP MCP server for the bridge tests, built on the official Python SDK.

It exists because no published server has the tools these tests need: a call that takes a set
time, an answer of a set size, an argument mirrored in an ``Mcp-Param-*`` header, a sampling
request sent on the GET stream after the call that asked for it, a counter of calls received, a
way to end every session from outside, resumable answer streams, and a tools/list split into
pages (server-everything and the other reference servers list every tool in one page, so nothing
published exercises ``nextCursor``).

Usage: ``python http_server.py [--json] [--token TOKEN] [--page-size N] [--stdio] [--resumable] [--public-tools MS]``;
binds 127.0.0.1 on a free port and prints ``PORT <n>`` on stdout once it accepts connections.
``POST /forget`` ends every session (404 from then on). With ``--token``, requests without
``Authorization: Bearer TOKEN`` get 401. With ``--page-size N``, tools/list answers N tools a
page (sorted by name, the cursor is the next index). With ``--stdio`` the same server speaks over
stdin/stdout instead. With ``--resumable``, events are numbered and replayed after ``Last-Event-ID``.
With ``--public-tools MS``, 2026-07-28 tools/list answers say any cache may share them (``cacheScope: public``).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.abc
import uvicorn
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import JSONRPCMessage
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

_background: list[anyio.abc.TaskGroup] = []
calls = {"count": 0}


@asynccontextmanager
async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        _background.append(tg)
        yield
        tg.cancel_scope.cancel()


class PagedServer(MCPServer[Any]):
    """The SDK's server, listing tools ``page_size`` at a time when that is set."""

    page_size = 0
    public_ttl_ms: int | None = None
    """With ``--public-tools MS``: tools/list answers say any cache may share them for MS milliseconds."""

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools = sorted(await self.list_tools(), key=lambda t: t.name)
        scope: dict[str, Any] = {}
        if self.public_ttl_ms is not None:
            scope = {"cache_scope": "public", "ttl_ms": self.public_ttl_ms}
        if not self.page_size:
            return types.ListToolsResult(tools=tools, **scope)
        start = int(params.cursor) if params is not None and params.cursor else 0
        end = start + self.page_size
        page = tools[start:end]
        return types.ListToolsResult(tools=page, next_cursor=str(end) if end < len(tools) else None, **scope)


server = PagedServer("regogate-test-http", lifespan=lifespan)


@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    calls["count"] += 1
    return text


@server.tool()
def route(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str) -> str:
    """Echo the text with the region it was routed by (2026-07-28 requests mirror it in Mcp-Param-Region)."""
    return f"{region}:{text}"


@server.tool()
def count() -> int:
    """How many echo/slow/big calls this server has run."""
    return calls["count"]


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Report progress three times, then wait ``seconds``."""
    calls["count"] += 1
    for step in range(3):
        await ctx.report_progress(step + 1, 3, f"step {step + 1}")
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def big(size: int) -> str:
    """A text of ``size`` bytes."""
    calls["count"] += 1
    return "x" * size


@server.tool()
async def shout(text: str, ctx: Context) -> str:
    """Log ``text`` on the answer stream, then return it upper-cased."""
    await ctx.info(f"shouting {text}")
    return text.upper()


@server.tool()
async def sample(prompt: str, ctx: Context) -> str:
    """Ask the client's model (sampling, on this call's answer stream)."""
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=20,
        related_request_id=ctx.request_id,
    )
    content = result.content
    return str(getattr(content, "text", content))


class Answer(BaseModel):
    answer: str


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Ask the user (form elicitation)."""
    result = await ctx.elicit(question, Answer)
    return result.data.answer if result.action == "accept" and result.data else result.action


@server.tool()
async def sample_later(prompt: str, ctx: Context) -> str:
    """Return at once; then ask the client's model on the GET stream and log what it said there."""
    session = ctx.session

    async def later() -> None:
        await anyio.sleep(0.1)
        result = await session.create_message(
            messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
            max_tokens=20,
        )
        await session.send_log_message("info", f"sampled later: {getattr(result.content, 'text', '')}")

    _background[-1].start_soon(later)
    return "scheduled"


class MemoryEventStore(EventStore):
    """Every event numbered and kept, so a broken answer stream can be resumed (``--resumable``)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, StreamId, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = str(len(self.events) + 1)
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        index = next((i for i, (event_id, _, _) in enumerate(self.events) if event_id == last_event_id), None)
        if index is None:
            return None
        stream = self.events[index][1]
        for event_id, stream_id, message in self.events[index + 1 :]:
            if stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


class Bearer:
    """Refuse requests without the expected bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.expected:
            await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def forget_route() -> Callable[[Request], Awaitable[Response]]:
    async def forget(_: Request) -> Response:
        manager = server.session_manager
        # Test-only reach into the SDK: end every session as an expiring server would.
        for session_id, transport in list(manager._server_instances.items()):
            await manager._discard_session(session_id, transport)
        return JSONResponse({"forgotten": True})

    return forget


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true", help="answer with application/json, not event streams")
    parser.add_argument("--token")
    parser.add_argument("--page-size", type=int, default=0, help="tools per tools/list page (0: one page)")
    parser.add_argument("--stdio", action="store_true", help="speak over stdin/stdout, not HTTP")
    parser.add_argument("--resumable", action="store_true", help="number events and replay them after Last-Event-ID")
    parser.add_argument("--public-tools", type=int, metavar="MS", help="tools/list: cacheScope public, ttlMs MS")
    args = parser.parse_args()
    server.page_size = args.page_size
    server.public_ttl_ms = args.public_tools
    if args.stdio:
        anyio.run(server.run_stdio_async)
        return
    server.custom_route("/forget", methods=["POST"])(forget_route())
    security = TransportSecuritySettings(
        allowed_hosts=["127.0.0.1:*", "localhost:*"], allowed_origins=["http://127.0.0.1:*"]
    )
    app: ASGIApp = server.streamable_http_app(
        json_response=args.json,
        transport_security=security,
        event_store=MemoryEventStore() if args.resumable else None,
        retry_interval=100 if args.resumable else None,
    )
    if args.token:
        app = Bearer(app, args.token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(uv.serve, [sock])
            while not uv.started:
                await anyio.sleep(0.01)
            sys.stdout.write(f"PORT {sock.getsockname()[1]}\n")
            sys.stdout.flush()

    anyio.run(serve)


if __name__ == "__main__":
    main()
