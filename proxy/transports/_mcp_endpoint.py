"""``/mcp``: the Streamable HTTP transport (POST, GET event stream, DELETE) over the gateway's sessions.

A POSTed request waits for the first message the relay routes to it: the answer itself goes back as
``application/json``; a server message first (progress, sampling, a log) turns the answer into an
event stream that ends with the answer. Notifications and the client's answers get 202. A session
starts with an ``initialize`` POST without ``Mcp-Session-Id`` and belongs to the principal that
started it; any other request must name a live session of the same principal. Denials are ordinary
answers (HTTP 200, a tool result with ``isError``), exactly as on stdio.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from regogate.core import RegogateError
from regogate.proxy.relay import BadLine, decode, id_key
from regogate.proxy.transports._client_link import Exchange, Outgoing
from regogate.proxy.transports._gateway_session import GatewaySession
from regogate.proxy.transports._http_guard import (
    EVENT_STREAM,
    JSON,
    NO_STORE,
    BodyTooLarge,
    HttpGuard,
    read_body,
    rpc_error,
)
from regogate.proxy.transports._session_pool import PoolClosed, SessionPool

__all__ = ["Authenticator", "McpEndpoint", "same_principal"]

logger = logging.getLogger(__name__)

SESSION_HEADER = "mcp-session-id"
RETRY_AFTER = "5"
"""Seconds a client is told to wait when no session can be opened now."""


class Authenticator(Protocol):
    """Who is calling: the principal's claims, or the answer refusing the request (401)."""

    async def __call__(self, request: Request) -> Mapping[str, object] | Response: ...


def same_principal(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    """Two principals are the same caller when their ``id`` and issuer agree."""
    return a.get("id") == b.get("id") and a.get("iss") == b.get("iss")


def _sse_event(line: bytes) -> bytes:
    return b"event: message\ndata: " + line + b"\n\n"


class McpEndpoint:
    """The ASGI app mounted at ``/mcp``."""

    def __init__(self, pool: SessionPool, guard: HttpGuard, authenticate: Authenticator) -> None:
        self._pool = pool
        self._guard = guard
        self._authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._dispatch(request)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        refused = self._guard.check(request)
        if refused is not None:
            return refused
        if request.method not in ("POST", "GET", "DELETE"):
            return rpc_error(405, "method not allowed", headers={"allow": "GET, POST, DELETE"})
        who = await self._authenticate(request)
        if isinstance(who, Response):
            return who
        if request.method == "POST":
            return await self._post(request, who)
        session = self._session(request, who)
        if isinstance(session, Response):
            return session
        if request.method == "DELETE":
            await self._pool.close(session)
            return Response(status_code=200, headers=NO_STORE)
        return self._listen(request, session)

    def _session(self, request: Request, who: Mapping[str, object]) -> GatewaySession | Response:
        session_id = request.headers.get(SESSION_HEADER)
        if session_id is None:
            return rpc_error(400, "Mcp-Session-Id header required; a session starts with initialize")
        session = self._pool.get(session_id)
        if session is None:
            return rpc_error(404, "session not found (it ended or never existed); start a new one with initialize")
        if not same_principal(session.principal, who):
            return rpc_error(403, "this session belongs to another principal")
        session.touch()
        return session

    async def _post(self, request: Request, who: Mapping[str, object]) -> Response:
        sse = self._guard.check_post(request)
        if isinstance(sse, Response):
            return sse
        try:
            body = await read_body(request, self._guard.max_body)
        except BodyTooLarge:
            return rpc_error(413, f"request body larger than {self._guard.max_body} bytes")
        decoded = decode(body)
        if isinstance(decoded, BadLine):
            return rpc_error(400, decoded.reason, code=decoded.code, request_id=decoded.request_id)
        message = decoded.message
        if not isinstance(message, dict):
            reason = "batches are not supported" if isinstance(message, list) else "not a JSON-RPC object"
            return rpc_error(400, f"invalid request: {reason}")
        method = message.get("method")
        is_request = "id" in message and method is not None
        new = method == "initialize" and is_request and SESSION_HEADER not in request.headers
        if new:
            try:
                session = await self._pool.create(who)
            except PoolClosed as exc:
                return rpc_error(503, str(exc), request_id=message.get("id"), headers={"retry-after": RETRY_AFTER})
            except RegogateError as exc:
                logger.error("cannot start a session's upstream: %s", exc)
                return rpc_error(502, "the upstream server could not be started", request_id=message.get("id"))
        else:
            found = self._session(request, who)
            if isinstance(found, Response):
                return found
            session = found
        headers = {**NO_STORE, SESSION_HEADER: session.id}
        if not is_request:
            if method == "notifications/cancelled":
                params = message.get("params")
                if isinstance(params, dict) and "requestId" in params:
                    session.link.cancel_exchange(params["requestId"])
            if not await session.link.submit(decoded.wire):
                return rpc_error(503, "the session is closing or busy", headers=headers)
            return Response(status_code=202, headers=headers)
        request_id = message["id"]
        if self._pool.draining and not new:
            return rpc_error(503, "the gateway is shutting down", request_id=request_id, headers=headers)
        if id_key(request_id) is None:
            return rpc_error(400, "invalid request: id must be a string or an integer", request_id=None)
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        exchange = session.link.open_exchange(request_id, token, sse=sse)
        if exchange is None:
            return rpc_error(409, "a request with this id is already in flight", request_id=request_id, headers=headers)
        if not await session.link.submit(decoded.wire):
            session.link.close_exchange(exchange)
            return rpc_error(503, "the session is closing or busy", request_id=request_id, headers=headers)
        first = await _first_or_gone(exchange, request.receive)
        if first is None:
            session.link.close_exchange(exchange)
            if new:
                await self._pool.close(session)
            return Response(status_code=499)  # nobody reads it: the client went away
        line, final = first
        if not final:
            return StreamingResponse(
                self._event_stream(session, exchange, line), media_type=EVENT_STREAM, headers=headers
            )
        session.link.close_exchange(exchange)
        if new and b'"error"' in line and _is_error(line):
            await self._pool.close(session)
            del headers[SESSION_HEADER]
        return Response(line, status_code=200, media_type=JSON, headers=headers)

    async def _event_stream(self, session: GatewaySession, exchange: Exchange, first: bytes) -> AsyncIterator[bytes]:
        try:
            yield _sse_event(first)
            async for line, _final in exchange.receive:
                yield _sse_event(line)
        finally:
            session.link.close_exchange(exchange)

    def _listen(self, request: Request, session: GatewaySession) -> Response:
        if EVENT_STREAM not in request.headers.get("accept", ""):
            return rpc_error(406, "Accept must include text/event-stream")
        stream = session.link.listen()
        if stream is None:
            return rpc_error(409, "this session's GET stream is open already")

        async def events() -> AsyncIterator[bytes]:
            try:
                async for line in stream:
                    yield _sse_event(line)
            finally:
                session.link.unlisten(stream)

        headers = {**NO_STORE, SESSION_HEADER: session.id}
        return StreamingResponse(events(), media_type=EVENT_STREAM, headers=headers)


def _is_error(line: bytes) -> bool:
    decoded = decode(line)
    return not isinstance(decoded, BadLine) and isinstance(decoded.message, dict) and "error" in decoded.message


async def _first_or_gone(exchange: Exchange, receive: Receive) -> Outgoing | None:
    """The first message for the exchange, or ``None`` if the client disconnects (or the session ends) first."""
    first: Outgoing | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        try:
            first = await exchange.receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            first = None
        tg.cancel_scope.cancel()
    return first
