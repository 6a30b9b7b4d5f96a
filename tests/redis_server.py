"""A real Redis for the tests: local ``redis-server``, or the same server in a container.

Load it as a pytest plugin (``pytest_plugins = ["tests.redis_server"]``) for the session-scoped
``redis_server`` and ``redis_url`` fixtures: each test that takes them runs on both paths
(``REGOGATE_TEST_REDIS=local`` or ``container`` keeps one); ``request.getfixturevalue`` gets the
local one (or ask for ``redis_local`` / ``redis_container`` by name). Both give a URL on a fixed loopback
port, without persistence, and both can be taken down and brought back on that port
(``RedisServer.outage``). The container (``regogate-test/redis``, tests/images.py) uses the host's
network. A missing local Redis is a failure, never a skip: run ``scripts/setup-redis.sh``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import pytest

from tests import images
from tests.conftest import free_tcp_port
from tests.engine import MODES, require_container, require_mode

__all__ = ["RedisServer", "find_redis_server", "redis_container", "redis_local", "redis_server", "redis_url"]

#: A local redis-server listens within milliseconds; the rest is slack for a loaded CI machine.
START_TIMEOUT: Final = 10.0
#: Readiness probes are one loopback round trip; probing often keeps start-up short.
POLL_INTERVAL: Final = 0.01
#: A killed redis-server is gone at once; this bounds the wait for its exit status.
STOP_TIMEOUT: Final = 5.0
IMAGE: Final = images.REDIS_IMAGE
#: No RDB snapshots and no AOF: test counters need no durability, and no files are left behind.
NO_PERSISTENCE: Final = ("--save", "", "--appendonly", "no")

Mode = Literal["local", "container"]


def find_redis_server() -> str:
    """The ``redis-server`` binary: ``$REGOGATE_REDIS_SERVER``, then PATH, then Debian's path.

    Raises:
        FileNotFoundError: there is none; the message says how to install it.
    """
    for candidate in (os.environ.get("REGOGATE_REDIS_SERVER"), shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "no redis-server binary and no Docker engine: run scripts/setup-redis.sh (it installs Debian's redis-server)"
    )


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=POLL_INTERVAL * 10) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One Redis on 127.0.0.1 at a fixed port, for the whole test session."""

    def __init__(self, workdir: Path, mode: Mode) -> None:
        self.port = free_tcp_port()
        self.mode = mode
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._container: Any | None = None
        self.host = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        """Start the server for the first time and wait until it answers PING.

        Raises:
            FileNotFoundError: no redis-server and no Docker engine.
        """
        if self.mode == "container":
            from testcontainers.core.container import DockerContainer

            listen = ("--port", str(self.port), "--bind", "127.0.0.1")
            container = (
                DockerContainer(IMAGE)
                .with_command(["redis-server", *listen, *NO_PERSISTENCE])
                .with_kwargs(network_mode="host")
            )
            container.start()
            self._container = container
        else:
            self._spawn(find_redis_server())
        self._wait_ready()

    def _spawn(self, binary: str) -> None:
        log = (self._workdir / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [
                    binary,
                    *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self._workdir)),
                    *NO_PERSISTENCE,
                    *("--daemonize", "no", "--loglevel", "warning"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_ping(self.host, self.port):
            if self._process is not None and self._process.poll() is not None:
                log = (self._workdir / "redis.log").read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(f"redis-server exited with {self._process.returncode}:\n{log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis on {self.host}:{self.port} did not answer within {START_TIMEOUT:g}s")
            time.sleep(POLL_INTERVAL)

    def kill(self) -> None:
        """Take the server down abruptly (SIGKILL or ``docker kill``); its port stops answering."""
        if self._container is not None:
            self._container.get_wrapped_container().kill()
        elif self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(STOP_TIMEOUT)
            self._process = None

    def restart(self) -> None:
        """Bring the server back on the same port (empty: nothing was persisted)."""
        if self._container is not None:
            self._container.get_wrapped_container().start()
        else:
            self._spawn(find_redis_server())
        self._wait_ready()

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Redis is down inside the block and back, on the same port, after it."""
        self.kill()
        try:
            yield
        finally:
            self.restart()

    def stop(self) -> None:
        """Stop for good, at the end of the session."""
        if self._container is not None:
            self._container.stop()
            self._container = None
        self.kill()


@contextmanager
def _running(mode: Mode) -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="regogate-redis-") as workdir:
        server = RedisServer(Path(workdir), mode)
        try:
            try:
                server.start()
            except FileNotFoundError as exc:
                pytest.fail(str(exc), pytrace=False)
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_local() -> Iterator[RedisServer]:
    """A local redis-server for the session; fails (never skips) when there is none."""
    require_mode("local", "REGOGATE_TEST_REDIS")
    with _running("local") as server:
        yield server


@pytest.fixture(scope="session")
def redis_container() -> Iterator[RedisServer]:
    """The same Redis in a container; skips (fails under ``CI=true``) without an engine or image."""
    require_mode("container", "REGOGATE_TEST_REDIS")
    require_container(IMAGE)
    with _running("container") as server:
        yield server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``redis_server`` (or ``redis_url``) runs on the local and the container Redis."""
    if "redis_server" in metafunc.fixturenames:
        metafunc.parametrize("redis_server", MODES, indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> RedisServer:
    """The session's Redis, as the test's parameter says; the local one when looked up by name at run time."""
    mode = getattr(request, "param", "local")
    server: RedisServer = request.getfixturevalue(f"redis_{mode}")
    return server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://host:port/0`` of the session's Redis."""
    return redis_server.url
