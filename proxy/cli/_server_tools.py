"""Ask an MCP server for every tool it offers: start or reach it, initialize, page through tools/list, stop.

Used by ``regogate scan`` and ``regogate validate``. A server is a command (spawned, its stderr
passing through) or a Streamable HTTP URL (reached through the bridge's HTTP upstream, so headers
stay secret the same way). Lines that are not JSON, or answer nothing we asked, are skipped;
requests the server sends us are refused politely (we declare no client capabilities).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Final

import anyio

from regogate.core import ConfigError, __version__
from regogate.proxy.relay import (
    Decoded,
    HttpTarget,
    LineSink,
    LineSource,
    Oversize,
    PeerClosed,
    Upstream,
    encode,
    error_line,
)

__all__ = ["LIST_TIMEOUT", "MAX_PAGES", "list_remote_tools", "list_server_tools", "list_tools_of"]

log = logging.getLogger(__name__)

#: A server started by npx or uvx may download itself first; half a minute covers that.
LIST_TIMEOUT: Final = 30.0
#: Page cap, so a server whose nextCursor never ends cannot keep us.
MAX_PAGES: Final = 100
#: The protocol version offered; servers answer with the newest they support.
PROTOCOL_VERSION: Final = "2025-06-18"
_METHOD_NOT_FOUND: Final = -32601


class _Session:
    def __init__(self, sink: LineSink, source: LineSource, label: str) -> None:
        self._sink, self._source = sink, source
        self._label = label
        self._next_id = 0

    async def request(self, method: str, params: dict[str, object]) -> dict[str, object]:
        self._next_id += 1
        request_id = self._next_id
        await self._sink.send(encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
        while True:
            line = await self._source.receive()
            if line is None:
                raise ConfigError(f"{self._label}: the server closed its output before answering {method}")
            if isinstance(line, Oversize):
                continue
            if isinstance(line, Decoded):
                message = line.message
            else:
                try:
                    message = json.loads(line)
                except ValueError:
                    log.debug("skipping a line that is not JSON: %.80r", line)
                    continue
            if not isinstance(message, dict):
                continue
            if "method" in message:
                if "id" in message:
                    await self._sink.send(error_line(message["id"], _METHOD_NOT_FOUND, "not supported"))
                continue
            if message.get("id") != request_id:
                continue
            error = message.get("error")
            if isinstance(error, dict):
                raise ConfigError(f"{self._label}: {method} failed: {error.get('message')}")
            result = message.get("result")
            if not isinstance(result, dict):
                raise ConfigError(f"{self._label}: {method} answered without a result object")
            return result

    async def notify(self, method: str) -> None:
        await self._sink.send(encode({"jsonrpc": "2.0", "method": method}))

    async def every_tool(self) -> list[dict[str, object]]:
        await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "regogate", "version": __version__},
            },
        )
        await self.notify("notifications/initialized")
        tools: list[dict[str, object]] = []
        params: dict[str, object] = {}
        for _ in range(MAX_PAGES):
            page = await self.request("tools/list", params)
            entries = page.get("tools")
            if not isinstance(entries, list):
                raise ConfigError(f"{self._label}: tools/list answered without a tools array")
            tools += [t for t in entries if isinstance(t, dict) and isinstance(t.get("name"), str)]
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return tools
            params = {"cursor": cursor}
        log.warning("%s: stopped after %d pages of tools/list", self._label, MAX_PAGES)
        return tools


async def list_server_tools(argv: Sequence[str], *, timeout: float = LIST_TIMEOUT) -> list[dict[str, object]]:
    """Every tool ``argv``'s server lists, over all pages, in its order.

    Raises:
        ConfigError: the server cannot be started, fails, or does not answer within ``timeout``.
    """
    label = " ".join(argv)
    upstream = Upstream.spawn(argv)
    try:
        with anyio.fail_after(timeout):
            return await _Session(upstream.stdin, upstream.stdout, label).every_tool()
    except TimeoutError as exc:
        raise ConfigError(f"{label}: no complete tools/list within {timeout:g} s") from exc
    except PeerClosed as exc:
        raise ConfigError(f"{label}: the server closed its input (did it exit?)") from exc
    finally:
        await upstream.stop()
        upstream.close()


async def list_remote_tools(target: HttpTarget, *, timeout: float = LIST_TIMEOUT) -> list[dict[str, object]]:
    """Every tool the Streamable HTTP server ``target`` lists, over all pages; the session is DELETEd after.

    Messages name the server by ``target.display`` and never carry a header value or the URL's secrets.

    Raises:
        ConfigError: the server cannot be reached, fails, or does not answer within ``timeout``.
    """
    # Imported here: the HTTP client costs start-up time that a command upstream never needs.
    from regogate.proxy.relay import HttpUpstream

    # The bridge logs each failed request before answering it; here the answer becomes our one error line.
    logging.getLogger("regogate.proxy.relay").setLevel(logging.ERROR)
    label = target.display
    tools: list[dict[str, object]] = []
    failure = ""
    try:
        with anyio.fail_after(timeout):
            async with HttpUpstream.connect(target) as upstream:
                # Caught inside: an error leaving the upstream's task group would arrive as an ExceptionGroup.
                try:
                    tools = await _Session(upstream, upstream, label).every_tool()
                except PeerClosed:
                    failure = f"{label}: the server ended the session"
                except ConfigError as exc:
                    failure = str(exc)
    except TimeoutError as exc:
        raise ConfigError(f"{label}: no complete tools/list within {timeout:g} s") from exc
    if failure:
        raise ConfigError(target.scrub(failure))
    return tools


async def list_tools_of(
    command: Sequence[str], target: HttpTarget | None, *, timeout: float = LIST_TIMEOUT
) -> list[dict[str, object]]:
    """Every tool of the server given as a command, or as ``target`` when that is not ``None``.

    Raises:
        ConfigError: as ``list_server_tools`` and ``list_remote_tools``.
    """
    if target is not None:
        return await list_remote_tools(target, timeout=timeout)
    return await list_server_tools(command, timeout=timeout)
