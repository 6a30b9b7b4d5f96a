"""Run one stdio session bridged to a Streamable HTTP server: relay until either side ends, DELETE the session.

Kept apart from ``_stdio`` so that the process path never imports the HTTP client (start-up time).
"""

from __future__ import annotations

import logging
import signal

import anyio
import anyio.abc

from regogate.proxy.relay import (
    DECISION_TIMEOUT,
    DEFAULT_DENY_PREFIX,
    Gateway,
    HttpTarget,
    HttpUpstream,
    Relay,
)
from regogate.proxy.transports._stdio import FORWARDED_SIGNALS, ClientStdio

logger = logging.getLogger(__name__)


async def run_bridge(
    target: HttpTarget,
    gateway: Gateway,
    *,
    deny_prefix: str = DEFAULT_DENY_PREFIX,
    decision_timeout: float = DECISION_TIMEOUT,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
) -> int:
    """Relay ``stdin_fd``/``stdout_fd`` to the Streamable HTTP server ``target`` until one side ends.

    Returns 0, or 1 when the server ended the session. A signal ends the session (the server's
    session is DELETEd). Must run in the main thread (it installs signal handlers).
    """
    with ClientStdio(stdin_fd, stdout_fd) as client:
        async with HttpUpstream.connect(target) as upstream, anyio.create_task_group() as outer:
            with anyio.CancelScope() as session_scope:
                await outer.start(_end_on_signals, session_scope)
                relay = Relay(
                    gateway,
                    client_in=client.reader,
                    client_out=client.writer,
                    upstream_in=upstream,
                    upstream_out=upstream,
                    on_client_closed=upstream.stop,
                    deny_prefix=deny_prefix,
                    decision_timeout=decision_timeout,
                )
                await relay.run()
            status = await upstream.stop()
            outer.cancel_scope.cancel()
    return status


async def _end_on_signals(
    session_scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """End the session on SIGTERM, SIGINT or SIGHUP; keep catching them through teardown."""
    with anyio.open_signal_receiver(*FORWARDED_SIGNALS) as signals:
        task_status.started()
        async for signum in signals:
            logger.info("got %s: ending the session", signal.Signals(signum).name)
            session_scope.cancel()
