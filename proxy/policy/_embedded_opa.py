"""Runs OPA as a private child process on a unix socket, and finds the OPA binary.

``EmbeddedOpa`` starts ``opa run --server`` on ``unix://<private 0700 dir>/opa.sock`` with the given
bundles, returns once ``/health?bundles`` answers 200, and on exit stops the child (SIGTERM, a
bounded wait, then SIGKILL) and removes the directory, even when cancelled.

Reload starts a second OPA on a new socket with the new bundles and, once it is ready, retargets
the one ``OpaClient`` to it; requests already in flight (and decisions holding the old OPA) finish
on the old OPA, which is stopped after them. A bundle that fails to load never replaces a working one: ``reload`` raises
``ConfigError`` and the old OPA keeps deciding. (OPA's own ``--watch`` was not chosen: it reloads
asynchronously, so regogate could not tell when, or whether, a new bundle took effect.)
OPA's stdout and stderr (load errors, its log) go to the ``regogate.opa`` logger, never to
regogate's stdout. With ``decision_logs`` OPA prints its console decision log, one JSON event per
line; those lines go to the ``decision_log`` sink when one is given (``regogate run --decision-log``),
else to the logger at INFO.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from types import TracebackType
from typing import Final

import anyio
import anyio.abc

from regogate.core import ConfigError
from regogate.proxy.lifecycle import private_dir
from regogate.proxy.policy._opa_client import DEFAULT_TIMEOUT, OpaClient
from regogate.proxy.policy._opa_install import how_to_get_opa

__all__ = ["READY_TIMEOUT", "DecisionLogSink", "EmbeddedOpa", "find_opa"]

logger = logging.getLogger(__name__)
opa_logger = logging.getLogger("regogate.opa")

#: OPA compiles its bundles before it listens; a big policy on a slow machine may need seconds.
READY_TIMEOUT: Final = 10.0
#: How often readiness is probed; a local probe costs well under a millisecond.
READY_POLL_INTERVAL: Final = 0.01
#: How long OPA may take to exit after SIGTERM (and again after SIGKILL) before we give up waiting.
STOP_TIMEOUT: Final = 5.0
#: Passed to ``--shutdown-grace-period``: OPA waits this long for open requests on SIGTERM.
SHUTDOWN_GRACE_SECONDS: Final = 2
#: How long to wait for OPA's last output lines once it has exited.
OUTPUT_DRAIN_TIMEOUT: Final = 1.0
#: How many output lines are kept to explain a failed start.
OUTPUT_TAIL_LINES: Final = 20
#: Longest output line kept or logged; decision-log lines carry the whole input.
MAX_LINE_BYTES: Final = 64 * 1024
SOCKET_NAME: Final = "opa.sock"
#: The Go runtime settings OPA gets unless the user's environment sets them. One P: regogate feeds
#: OPA from one event loop, and idle Ps spinning for work cost more CPU per decision than they save
#: (measured: ~15% less OPA CPU per call on 2 cores; see bench/notes.md).
GO_RUNTIME_DEFAULTS: Final = {"GOMAXPROCS": "1"}
#: The ``type`` of an event in OPA's console decision log.
DECISION_LOG_TYPE: Final = "openpolicyagent.org/decision_logs"
_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING}


def _executable(path: str | Path) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_opa(explicit: str | None = None) -> str:
    """Return the OPA binary to run.

    Looks at ``explicit`` (``--opa-bin``), then ``$REGOGATE_OPA``, then ``opa`` on ``PATH``, then
    ``$REGOGATE_CACHE/bin/opa`` (default cache ``~/.cache/regogate``). An explicit path must work;
    the others are skipped when they are not executable files.

    Raises:
        ConfigError: ``explicit`` is not an executable file, or no candidate is.
    """
    if explicit:
        if _executable(explicit):
            return explicit
        raise ConfigError(f"--opa-bin {explicit}: not an executable file")
    tried: list[str] = []
    from_env = os.environ.get("REGOGATE_OPA")
    if from_env:
        if _executable(from_env):
            return from_env
        tried.append(f"$REGOGATE_OPA={from_env}")
    on_path = shutil.which("opa")
    if on_path:
        return on_path
    tried.append("opa on PATH")
    cache = os.environ.get("REGOGATE_CACHE") or str(Path.home() / ".cache" / "regogate")
    cached = Path(cache) / "bin" / "opa"
    if _executable(cached):
        return str(cached)
    tried.append(str(cached))
    raise ConfigError(f"no OPA binary found (tried {', '.join(tried)}); {how_to_get_opa()}")


_ROOT_WARNING = "OPA running with uid or gid 0"


DecisionLogSink = Callable[[str], None]


def _log_opa_line(line: str, decision_log: DecisionLogSink | None = None) -> None:
    level = logging.ERROR
    if line.startswith("{"):
        with suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                if decision_log is not None and record.get("type") == DECISION_LOG_TYPE:
                    decision_log(line)
                    return
                level = _LEVELS.get(str(record.get("level")), logging.ERROR)
                if str(record.get("msg", "")).startswith(_ROOT_WARNING):
                    level = logging.DEBUG  # containers and CI run as root by design; not worth a line every start
    opa_logger.log(level, "%s", line)


class _Child:
    """One running OPA process, its private directory and the tail of its output."""

    def __init__(self, process: anyio.abc.Process, directory: str, decision_log: DecisionLogSink | None) -> None:
        self.process = process
        self.decision_log = decision_log
        self.directory = directory
        self.url = f"unix://{directory}/{SOCKET_NAME}"
        self.tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
        self.output_done = anyio.Event()

    async def pump_output(self) -> None:
        """Log OPA's output line by line and keep its tail, until OPA closes it."""
        stream = self.process.stdout
        pending = b""
        try:
            if stream is None:
                return
            with suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                while True:
                    pending += await stream.receive()
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._line(raw)
                    if len(pending) > MAX_LINE_BYTES:
                        self._line(pending)
                        pending = b""
            if pending:
                self._line(pending)
        finally:
            self.output_done.set()

    def _line(self, raw: bytes) -> None:
        line = raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace").rstrip()
        if line:
            self.tail.append(line)
            _log_opa_line(line, self.decision_log)

    def output_tail(self) -> str:
        return "\n".join(self.tail) or "(OPA printed nothing)"

    async def stop(self) -> None:
        """Stop OPA (SIGTERM, then SIGKILL) and remove its directory; bounded and shielded."""
        process = self.process
        with anyio.CancelScope(shield=True):
            try:
                if process.returncode is None:
                    with suppress(ProcessLookupError):
                        process.terminate()
                    with anyio.move_on_after(STOP_TIMEOUT):
                        await process.wait()
                if process.returncode is None:
                    logger.warning("OPA (pid %d) ignored SIGTERM for %s s; killing it", process.pid, STOP_TIMEOUT)
                    with suppress(ProcessLookupError):
                        process.kill()
                    with anyio.move_on_after(STOP_TIMEOUT):
                        await process.wait()
                with anyio.move_on_after(OUTPUT_DRAIN_TIMEOUT):
                    await self.output_done.wait()
                await process.aclose()
            finally:
                shutil.rmtree(self.directory, ignore_errors=True)


class EmbeddedOpa:
    """OPA as a child process on a private unix socket; an async context manager.

    Use ``client`` for decisions; it stays the same object across ``reload``.
    """

    def __init__(
        self,
        bundle_dirs: Sequence[str | Path],
        *,
        opa_bin: str | None = None,
        decision_logs: bool = False,
        decision_log: DecisionLogSink | None = None,
        ready_timeout: float = READY_TIMEOUT,
        client_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Describe the sidecar; nothing starts until ``async with``.

        ``decision_logs`` turns on OPA's console decision log; ``decision_log`` receives each of its
        lines (one JSON event), across reloads.

        Raises:
            ConfigError: no OPA binary can be found (see ``find_opa``).
        """
        self.opa_bin = find_opa(opa_bin)
        self._bundle_dirs = tuple(str(d) for d in bundle_dirs)
        self._decision_logs = decision_logs
        self._decision_log = decision_log
        self._ready_timeout = ready_timeout
        self._client_timeout = client_timeout
        self._stack: AsyncExitStack | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._child: _Child | None = None
        self._client: OpaClient | None = None
        self._lock = anyio.Lock()
        #: Seconds from spawning the current OPA to its first 200 on ``/health?bundles``.
        self.ready_seconds: float | None = None

    @property
    def url(self) -> str:
        """The current OPA's address, ``unix:///…/opa.sock``."""
        if self._child is None:
            raise RuntimeError("EmbeddedOpa is not running")
        return self._child.url

    @property
    def client(self) -> OpaClient:
        """The client for the running OPA; ``reload`` retargets it in place."""
        if self._client is None:
            raise RuntimeError("EmbeddedOpa is not running")
        return self._client

    @property
    def pid(self) -> int:
        """The process id of the current OPA."""
        if self._child is None:
            raise RuntimeError("EmbeddedOpa is not running")
        return self._child.process.pid

    @property
    def bundle_dirs(self) -> tuple[str, ...]:
        """The bundles the current OPA was started with."""
        return self._bundle_dirs

    async def wait_exited(self) -> tuple[int, int | None]:
        """Wait until the current OPA process exits (for any reason); return its pid and exit status."""
        if self._child is None:
            raise RuntimeError("EmbeddedOpa is not running")
        process = self._child.process
        await process.wait()
        return process.pid, process.returncode

    def _argv(self, socket_path: str, bundle_dirs: Sequence[str]) -> list[str]:
        argv = [
            self.opa_bin,
            "run",
            "--server",
            "--addr",
            f"unix://{socket_path}",
            "--log-level",
            "error",
            "--skip-version-check",
            "--shutdown-grace-period",
            str(SHUTDOWN_GRACE_SECONDS),
        ]
        if self._decision_logs:
            argv += ["--set", "decision_logs.console=true"]
        for directory in bundle_dirs:
            argv += ["--bundle", directory]
        return argv

    async def __aenter__(self) -> EmbeddedOpa:
        """Start OPA and wait until it is ready.

        Raises:
            ConfigError: OPA exited early (e.g. a bundle fails to compile; its output is quoted) or
                was not ready within ``ready_timeout``.
        """
        if self._stack is not None:
            raise RuntimeError("EmbeddedOpa is already running")
        stack = AsyncExitStack()
        try:
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            self._child = await self._start(self._bundle_dirs)
            self._client = OpaClient(self._child.url, timeout=self._client_timeout)
        except BaseException:
            self._task_group = None
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        stack, self._stack = self._stack, None
        with anyio.CancelScope(shield=True):
            async with self._lock:
                if self._client is not None:
                    await self._client.aclose()
                if self._child is not None:
                    await self._child.stop()
            self._client = self._child = self._task_group = None
        if stack is not None:
            # Only output pumps live in the task group and they ended with their OPA. Exiting it
            # as if the body succeeded keeps the body's own exception unwrapped (anyio would
            # otherwise put it in an ExceptionGroup).
            await stack.aclose()
        return None

    async def reload(self, bundle_dirs: Sequence[str | Path], *, on_switch: Callable[[], None] | None = None) -> None:
        """Switch to a new OPA loaded with ``bundle_dirs`` without dropping calls in flight.

        Returns once new calls are decided by the new bundles. On failure the old OPA keeps deciding.
        ``on_switch`` runs the moment the client starts asking the new OPA (see ``OpaClient.retarget``).

        Raises:
            ConfigError: the new OPA did not start (its output is quoted).
        """
        dirs = tuple(str(d) for d in bundle_dirs)
        async with self._lock:
            if self._child is None or self._client is None:
                raise RuntimeError("EmbeddedOpa is not running")
            new = await self._start(dirs)
            old, self._child = self._child, new
            self._bundle_dirs = dirs
            await self._client.retarget(new.url, on_switch=on_switch)
            await old.stop()

    async def _start(self, bundle_dirs: Sequence[str]) -> _Child:
        assert self._task_group is not None
        directory = str(private_dir("opa"))
        argv = self._argv(os.path.join(directory, SOCKET_NAME), bundle_dirs)
        started = anyio.current_time()
        try:
            # Shielded: a cancellation landing mid-spawn could leave an OPA nobody stops.
            with anyio.CancelScope(shield=True):
                process = await anyio.open_process(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env={**GO_RUNTIME_DEFAULTS, **os.environ},
                )
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise ConfigError(f"cannot run OPA ({self.opa_bin}): {exc}") from exc
        child = _Child(process, directory, self._decision_log)
        self._task_group.start_soon(child.pump_output)
        try:
            await self._wait_ready(child)
        except BaseException:
            await child.stop()
            raise
        self.ready_seconds = anyio.current_time() - started
        logger.info("OPA (pid %d) ready on %s in %.3f s", process.pid, child.url, self.ready_seconds)
        return child

    async def _wait_ready(self, child: _Child) -> None:
        async with OpaClient(child.url, timeout=self._client_timeout) as probe:
            with anyio.move_on_after(self._ready_timeout):
                while child.process.returncode is None:
                    if await probe.health(bundles=True):
                        return
                    await anyio.sleep(READY_POLL_INTERVAL)
        if child.process.returncode is None:
            raise ConfigError(f"OPA was not ready within {self._ready_timeout} s; its output:\n{child.output_tail()}")
        with anyio.move_on_after(OUTPUT_DRAIN_TIMEOUT):
            await child.output_done.wait()
        raise ConfigError(
            f"OPA ({self.opa_bin}) exited with status {child.process.returncode} before it was ready; "
            f"check --opa-bin and the policy bundles; its output:\n{child.output_tail()}"
        )
