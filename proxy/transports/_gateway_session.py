"""One client session of the HTTP gateway: its own upstream, relayed through the gate for one principal.

The session owns a ``Relay`` whose client side is a ``ClientLink`` (HTTP exchanges) and whose upstream
is its own: a child process started for this session alone, or its own Streamable HTTP session with
a remote server. Sessions share nothing but the gate (OPA, the counter store, the audit log). When
the relay ends, for whatever reason, every request still waiting gets an error answer and the
upstream is stopped (shielded, bounded; a remote session is DELETEd).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import anyio
import anyio.abc

from regogate.proxy.relay import Gateway, HttpTarget, HttpUpstream, LineSink, LineSource, Relay, Upstream
from regogate.proxy.transports._client_link import ClientLink

__all__ = ["GatewaySession"]

logger = logging.getLogger(__name__)


class GatewaySession:
    """One ``Mcp-Session-Id``: who it belongs to, its link to the relay, its upstream."""

    def __init__(
        self,
        session_id: str,
        principal: Mapping[str, object],
        gateway: Gateway,
        upstream: Sequence[str] | HttpTarget,
        *,
        deny_prefix: str,
    ) -> None:
        self.id = session_id
        self.principal = principal
        """The claims every decision of this session is made for."""
        self.link = ClientLink()
        self.last_seen = time.monotonic()
        self.ended = anyio.Event()
        self._gateway = gateway
        self._upstream = upstream
        self._deny_prefix = deny_prefix

    def touch(self) -> None:
        """A request arrived: the idle clock starts again."""
        self.last_seen = time.monotonic()

    def idle_for(self, now: float) -> float:
        """Seconds without a request and with nothing waiting for an answer (0 while busy); ``now`` is
        ``time.monotonic()`` (a request's touch reads it: anyio's clock costs several calls more)."""
        return 0.0 if self.link.busy else now - self.last_seen

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the upstream, then relay until either side ends; ``started`` once it is there.

        Raises:
            ConfigError: the upstream command cannot be started (before ``started``).
        """
        if isinstance(self._upstream, HttpTarget):
            await self._run_remote(self._upstream, task_status)
            return
        upstream = Upstream.spawn(self._upstream)
        task_status.started()
        try:
            await self._relay(upstream.stdout, upstream.stdin, upstream.stop)
        finally:
            self.link.finish()
            with anyio.CancelScope(shield=True):
                status = await upstream.stop()
            upstream.close()
            logger.info("session ended; its upstream exited with status %d", status)
            self.ended.set()

    async def _run_remote(self, target: HttpTarget, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            async with HttpUpstream.connect(target) as upstream:
                task_status.started()
                await self._relay(upstream, upstream, upstream.stop)
        finally:
            self.link.finish()
            logger.info("session ended; its remote session is closed")
            self.ended.set()

    async def _relay(self, source: LineSource, sink: LineSink, stop: Callable[[], Awaitable[object]]) -> None:
        relay = Relay(
            self._gateway,
            client_in=self.link,
            client_out=self.link,
            upstream_in=source,
            upstream_out=sink,
            on_client_closed=stop,
            deny_prefix=self._deny_prefix,
        )
        await relay.run()

    def close(self) -> None:
        """Wind the session down: the relay sees the client's end, drains, stops the upstream."""
        self.link.end_input()
