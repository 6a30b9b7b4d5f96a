"""The upstream MCP server process: spawn it, signal its group, stop it without orphans.

The child gets the full environment, inherits stderr, and runs in its own session
(so its process group can be signalled as one). On Linux it also gets
``PR_SET_PDEATHSIG`` so a SIGKILLed regogate still takes it down. Exit is awaited on
a pidfd where the kernel has them (no threads, no SIGCHLD watcher), else by polling.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence

import anyio

from regogate.core import ConfigError
from regogate.proxy.lifecycle import death_signal_hook, group_alive
from regogate.proxy.relay._framing import LineReader, LineWriter

logger = logging.getLogger(__name__)

STDIN_CLOSE_GRACE = 0.5
"""Time to exit after stdin closes; well under the 2 s hosts give us before SIGTERM."""

TERM_GRACE = 0.5
"""Time to exit after SIGTERM before SIGKILL; keeps the whole stop near 1 s."""

KILL_REAP_TIMEOUT = 1.0
"""Time for the kernel to reap a SIGKILLed group; only a process stuck in D state runs this out."""

EXIT_POLL_INTERVAL = 0.01
"""Polling step where no pidfd is available (and for group members we are not parent of)."""


def exit_status(returncode: int) -> int:
    """Shell-style status: the child's code, or 128 + signal number if a signal killed it."""
    return 128 - returncode if returncode < 0 else returncode


class Upstream:
    """A spawned MCP server with line-level access to its stdin and stdout."""

    def __init__(self, popen: subprocess.Popen[bytes], stdin: LineWriter, stdout: LineReader) -> None:
        self._popen = popen
        self.stdin = stdin
        """Lines to the server."""
        self.stdout = stdout
        """Lines from the server."""
        self.pid = popen.pid
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            self._pidfd = None
        self._stopping = False
        self._stopped = anyio.Event()

    @classmethod
    def spawn(cls, argv: Sequence[str]) -> Upstream:
        """Start ``argv`` with the full environment, stderr passed through.

        Raises:
            ConfigError: the command cannot be started.
        """
        if not argv:
            raise ConfigError("no upstream command given")
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=child_in,
                stdout=child_out,
                stderr=None,
                start_new_session=True,
                preexec_fn=death_signal_hook(),
            )
        except OSError as exc:
            for fd in (child_in, to_child, from_child, child_out):
                os.close(fd)
            raise ConfigError(
                f"cannot start the MCP server {argv[0]!r}: {exc.strerror or exc}; check the command after --"
            ) from exc
        os.close(child_in)
        os.close(child_out)
        logger.info("upstream started: pid %d", popen.pid)
        return cls(popen, LineWriter(to_child, owned=True), LineReader(from_child, owned=True))

    @property
    def returncode(self) -> int | None:
        """``Popen`` style: negative for a signal; ``None`` while running."""
        return self._popen.poll()

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the server's whole process group; a no-op once it is gone."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # the group id was reused by someone else's processes
            logger.warning("cannot signal upstream group %d", self.pid)

    def _group_alive(self) -> bool:
        # Zombies do not count: an orphaned member waits on init to reap it, and init may be slow.
        return group_alive(self.pid)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the server to exit; True if it did."""
        with anyio.move_on_after(timeout):
            while self._popen.poll() is None:
                if self._pidfd is not None:
                    await anyio.wait_readable(self._pidfd)
                else:
                    await anyio.sleep(EXIT_POLL_INTERVAL)
            return True
        return self._popen.poll() is not None

    async def _wait_group(self, timeout: float) -> bool:
        """Wait for every group member to go (they may not be our children: poll)."""
        with anyio.move_on_after(timeout):
            while self._group_alive():
                await anyio.sleep(EXIT_POLL_INTERVAL)
            return True
        return not self._group_alive()

    async def _wait_all(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            if await self.wait(timeout):
                return await self._wait_group(timeout)
        return False

    async def stop(self) -> int:
        """Close stdin, wait, SIGTERM the group, wait, SIGKILL it; return the exit status.

        Shielded and bounded (about ``STDIN_CLOSE_GRACE + TERM_GRACE + KILL_REAP_TIMEOUT``
        at worst); a second caller waits for the first.
        """
        with anyio.CancelScope(shield=True):
            if self._stopping:
                with anyio.move_on_after(STDIN_CLOSE_GRACE + TERM_GRACE + KILL_REAP_TIMEOUT):
                    await self._stopped.wait()
            else:
                self._stopping = True
                try:
                    await self._stop_sequence()
                finally:
                    self._stopped.set()
        code = self._popen.poll()
        return exit_status(code) if code is not None else 128 + signal.SIGKILL

    def close(self) -> None:
        """Release the pipes and the pidfd; call after ``stop`` once nothing reads them."""
        self.stdin.close()
        self.stdout.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    async def _stop_sequence(self) -> None:
        await self.stdin.aclose()
        if not await self._wait_all(STDIN_CLOSE_GRACE):
            logger.info("upstream still running %.1fs after stdin closed: SIGTERM", STDIN_CLOSE_GRACE)
            self.signal_group(signal.SIGTERM)
            if not await self._wait_all(TERM_GRACE):
                logger.warning("upstream ignored SIGTERM for %.1fs: SIGKILL", TERM_GRACE)
                self.signal_group(signal.SIGKILL)
                if not await self._wait_all(KILL_REAP_TIMEOUT):
                    logger.error("upstream pid %d survived SIGKILL", self.pid)
        code = self._popen.poll()
        if code is not None:
            logger.info("upstream exited with status %d", exit_status(code))
