"""The upstream's tool catalogue: learnt from tools/list replies, fetched under private ids when missing.

It also says what the client sees of a tools/list reply: the page without the tools the gateway hides,
marked ``cacheScope: "private"`` in the 2026-07-28 era (the page depends on who asks, so no cache may
share it across authorization contexts, whatever scope the server gave it).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc

from regogate.proxy.relay._codec import encode
from regogate.proxy.relay._ledger import Ledger, Refusal
from regogate.proxy.relay._wire import LOG_LEVEL_META_KEY, UPSTREAM_MALFORMED, error_line

logger = logging.getLogger(__name__)

TOOL_DISCOVERY_TIMEOUT = 5.0
"""How long a call for an unknown tool waits for the upstream's own tools/list; then tool=None."""

TOOL_DISCOVERY_MAX_PAGES = 100
"""Page cap so an upstream whose nextCursor never ends cannot loop us."""

PRIVATE_SCOPE = "private"
"""2026-07-28 ``cacheScope``: reusable only within the same authorization context (SEP-2549)."""


@dataclass
class _Reply:
    done: anyio.Event = field(default_factory=anyio.Event)
    message: dict[str, object] | None = None

    def __call__(self, message: dict[str, object] | None) -> None:
        self.message = message
        self.done.set()


class ToolCatalog:
    """Tool name -> tools/list entry, with at most one private fetch in flight."""

    def __init__(self, send_upstream: Callable[[bytes], Awaitable[bool]], ledger: Ledger) -> None:
        self._send_upstream = send_upstream
        self._ledger = ledger
        self._tools: dict[str, dict[str, object]] = {}
        self._complete = False  # a full private listing finished since the last list_changed
        self._stale = False
        self._generation = 0
        self._fetch: anyio.Event | None = None
        # Unguessable, so a client id can never collide with ours.
        self._prefix = f"regogate:tools:{secrets.token_hex(6)}:"
        self._count = 0
        self.handshake_done = anyio.Event()
        """Set by the relay once initialize was answered and notifications/initialized sent."""

    def learn(self, tools: list[object]) -> list[dict[str, object]]:
        """Record the named entries of a tools/list page; return them."""
        entries = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
        for entry in entries:
            self._tools[entry["name"]] = entry
        return entries

    async def shown(
        self,
        message: dict[str, object],
        wire: bytes,
        hidden: Callable[[list[dict[str, object]], bool], Awaitable[set[str]]],
        *,
        modern: bool = False,
    ) -> bytes:
        """The client's line for the server's tools/list answer ``message`` (encoded as ``wire``).

        ``hidden`` gets the page's entries and whether it is the last page (no ``nextCursor``).
        ``modern``: the request was of the 2026-07-28 era, whose results carry a ``cacheScope``.
        """
        if "error" in message:
            return wire
        result = message.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            # Unfilterable means unsafe to show: answer with an error instead.
            return error_line(message.get("id"), UPSTREAM_MALFORMED, "upstream tools/list result is malformed")
        names = await hidden(self.learn(result["tools"]), not result.get("nextCursor"))
        private = modern and result.get("cacheScope") != PRIVATE_SCOPE
        if not names and not private:
            return wire
        if names:
            result["tools"] = [t for t in result["tools"] if not (isinstance(t, dict) and t.get("name") in names)]
        if private:
            result["cacheScope"] = PRIVATE_SCOPE
        return encode(message)

    def invalidate(self) -> None:
        """The upstream said its tools changed."""
        self._stale, self._complete = True, False
        self._generation += 1

    async def entry(
        self, name: str, meta: dict[str, object], *, modern: bool, tg: anyio.abc.TaskGroup
    ) -> dict[str, object] | None:
        """The tool's entry, fetching the upstream's listing first if it is unknown or stale."""
        entry = self._tools.get(name)
        if self._stale or (entry is None and not self._complete):
            if self._fetch is None:
                self._fetch = anyio.Event()
                tg.start_soon(self._fetch_all, self._fetch, meta, modern)
            with anyio.move_on_after(TOOL_DISCOVERY_TIMEOUT):
                await self._fetch.wait()
            entry = self._tools.get(name)
        return entry

    async def _fetch_all(self, done: anyio.Event, meta: dict[str, object], modern: bool) -> None:
        generation = self._generation
        params: dict[str, object] = {}
        if modern:  # stateless era: every request carries its version and client in _meta
            reserved = "io.modelcontextprotocol/"
            params["_meta"] = {k: v for k, v in meta.items() if k.startswith(reserved) and k != LOG_LEVEL_META_KEY}
        try:
            with anyio.move_on_after(TOOL_DISCOVERY_TIMEOUT):
                if not modern:
                    await self.handshake_done.wait()
                for _ in range(TOOL_DISCOVERY_MAX_PAGES):
                    result = await self._fetch_page(params)
                    if result is None:
                        break
                    cursor = result.get("nextCursor")
                    if not isinstance(cursor, str) or not cursor:
                        if generation == self._generation:
                            self._complete, self._stale = True, False
                        break
                    params["cursor"] = cursor
        finally:
            self._fetch = None
            done.set()

    async def _fetch_page(self, params: dict[str, object]) -> dict[str, object] | None:
        self._count += 1
        private_id = f"{self._prefix}{self._count}"
        reply = _Reply()
        try:
            pending = self._ledger.private(private_id, "tools/list", reply)
        except Refusal as exc:
            logger.warning("cannot list the upstream's tools now: %s", exc)
            return None
        try:
            request = {"jsonrpc": "2.0", "id": private_id, "method": "tools/list", "params": params}
            if not await self._send_upstream(encode(request)):
                return None
            await reply.done.wait()
        finally:
            self._ledger.forget(pending)
        result = reply.message.get("result") if reply.message else None
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            logger.warning("upstream gave no usable tools/list; deciding without tool schemas")
            return None
        self.learn(result["tools"])
        return result
