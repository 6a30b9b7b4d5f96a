"""Ask an MCP server for every tool it offers: spawn it, initialize, page through tools/list, stop it.

Used by ``regogate scan`` and ``regogate validate -- COMMAND``. The server's stderr passes through;
lines on its stdout that are not JSON, or answer nothing we asked, are skipped; requests it sends
us are refused politely (we declare no client capabilities).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Final

import anyio

from regogate.core import ConfigError, __version__
from regogate.proxy.relay import Oversize, PeerClosed, Upstream, encode, error_line

log = logging.getLogger(__name__)

#: A server started by npx or uvx may download itself first; half a minute covers that.
LIST_TIMEOUT: Final = 30.0
#: Page cap, so a server whose nextCursor never ends cannot keep us.
MAX_PAGES: Final = 100
#: The protocol version offered; servers answer with the newest they support.
PROTOCOL_VERSION: Final = "2025-06-18"
_METHOD_NOT_FOUND: Final = -32601


class _Session:
    def __init__(self, upstream: Upstream, argv: Sequence[str]) -> None:
        self._upstream = upstream
        self._command = " ".join(argv)
        self._next_id = 0

    async def request(self, method: str, params: dict[str, object]) -> dict[str, object]:
        self._next_id += 1
        request_id = self._next_id
        await self._upstream.stdin.send(
            encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        )
        while True:
            line = await self._upstream.stdout.receive()
            if line is None:
                raise ConfigError(f"{self._command}: the server closed its output before answering {method}")
            if isinstance(line, Oversize):
                continue
            try:
                message = json.loads(line)
            except ValueError:
                log.debug("skipping a line that is not JSON: %.80r", line)
                continue
            if not isinstance(message, dict):
                continue
            if "method" in message:
                if "id" in message:
                    await self._upstream.stdin.send(error_line(message["id"], _METHOD_NOT_FOUND, "not supported"))
                continue
            if message.get("id") != request_id:
                continue
            error = message.get("error")
            if isinstance(error, dict):
                raise ConfigError(f"{self._command}: {method} failed: {error.get('message')}")
            result = message.get("result")
            if not isinstance(result, dict):
                raise ConfigError(f"{self._command}: {method} answered without a result object")
            return result

    async def notify(self, method: str) -> None:
        await self._upstream.stdin.send(encode({"jsonrpc": "2.0", "method": method}))


async def list_server_tools(argv: Sequence[str], *, timeout: float = LIST_TIMEOUT) -> list[dict[str, object]]:
    """Every tool ``argv``'s server lists, over all pages, in its order.

    Raises:
        ConfigError: the server cannot be started, fails, or does not answer within ``timeout``.
    """
    upstream = Upstream.spawn(argv)
    tools: list[dict[str, object]] = []
    try:
        with anyio.fail_after(timeout):
            session = _Session(upstream, argv)
            await session.request(
                "initialize",
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "regogate", "version": __version__},
                },
            )
            await session.notify("notifications/initialized")
            params: dict[str, object] = {}
            for _ in range(MAX_PAGES):
                page = await session.request("tools/list", params)
                entries = page.get("tools")
                if not isinstance(entries, list):
                    raise ConfigError(f"{' '.join(argv)}: tools/list answered without a tools array")
                tools += [t for t in entries if isinstance(t, dict) and isinstance(t.get("name"), str)]
                cursor = page.get("nextCursor")
                if not isinstance(cursor, str) or not cursor:
                    break
                params = {"cursor": cursor}
            else:
                log.warning("%s: stopped after %d pages of tools/list", argv[0], MAX_PAGES)
    except TimeoutError as exc:
        raise ConfigError(f"{' '.join(argv)}: no complete tools/list within {timeout:g} s") from exc
    except PeerClosed as exc:
        raise ConfigError(f"{' '.join(argv)}: the server closed its input (did it exit?)") from exc
    finally:
        await upstream.stop()
        upstream.close()
    return tools
