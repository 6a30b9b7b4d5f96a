"""Run one session: spawn the upstream, relay until either side ends, stop it, return its exit status.

Signal handling stays installed until the upstream is gone, so a host's SIGTERM that
arrives during teardown is forwarded instead of killing regogate and orphaning the server.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence

import anyio
import anyio.abc

from regogate.proxy.relay import DECISION_TIMEOUT, DEFAULT_DENY_PREFIX, Gateway, LineReader, LineWriter, Relay, Upstream

logger = logging.getLogger(__name__)

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def run_relay(
    upstream_argv: Sequence[str] | Upstream,
    gateway: Gateway,
    *,
    deny_prefix: str = DEFAULT_DENY_PREFIX,
    decision_timeout: float = DECISION_TIMEOUT,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
) -> int:
    """Relay ``stdin_fd``/``stdout_fd`` to a spawned ``upstream_argv`` until one side ends.

    ``upstream_argv`` may be an ``Upstream`` spawned earlier (while OPA started); the session then
    owns it as if it had spawned it. Returns the upstream's exit status (128 + signal number if a signal ended it).
    Must run in the main thread (it installs signal handlers).

    Raises:
        ConfigError: the upstream command cannot be started.
    """
    upstream = upstream_argv if isinstance(upstream_argv, Upstream) else Upstream.spawn(upstream_argv)
    with ClientStdio(stdin_fd, stdout_fd) as client:
        try:
            async with anyio.create_task_group() as outer:
                with anyio.CancelScope() as session_scope:
                    await outer.start(_forward_signals, upstream, session_scope)
                    relay = Relay(
                        gateway,
                        client_in=client.reader,
                        client_out=client.writer,
                        upstream_in=upstream.stdout,
                        upstream_out=upstream.stdin,
                        on_client_closed=upstream.stop,
                        deny_prefix=deny_prefix,
                        decision_timeout=decision_timeout,
                    )
                    await relay.run()
                status = await upstream.stop()
                outer.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.stop()
            upstream.close()
    return status


class ClientStdio:
    """The client's side of a stdio session: its line reader and writer, with the wire guarded.

    While open, fd 1 points at stderr and the wire uses a duplicate of it, so a stray print cannot
    corrupt the protocol; closing restores fd 1.
    """

    def __init__(self, stdin_fd: int, stdout_fd: int) -> None:
        self._stdout_fd = stdout_fd
        self._wire_fd = stdout_fd
        if stdout_fd == 1:
            self._wire_fd = os.dup(stdout_fd)
            os.dup2(2, stdout_fd)
        self.reader = LineReader(stdin_fd)
        self.writer = LineWriter(self._wire_fd)

    def __enter__(self) -> ClientStdio:
        return self

    def __exit__(self, *_: object) -> None:
        self.reader.close()
        self.writer.close()
        if self._wire_fd != self._stdout_fd:
            sys.stdout.flush()  # a stray buffered print still goes to stderr, not the wire
            os.dup2(self._wire_fd, self._stdout_fd)
            os.close(self._wire_fd)


async def _forward_signals(
    upstream: Upstream,
    session_scope: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Pass each signal to the upstream's group and end the session; keep doing so through teardown."""
    with anyio.open_signal_receiver(*FORWARDED_SIGNALS) as signals:
        task_status.started()
        async for signum in signals:
            logger.info("got %s: forwarding to the upstream and stopping", signal.Signals(signum).name)
            upstream.signal_group(signum)
            session_scope.cancel()
