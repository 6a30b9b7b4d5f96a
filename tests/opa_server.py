"""A real OPA server for tests: the local binary, or the same binary in a container.

Both paths run the same ``opa run --server`` arguments on a loopback port and yield the same
``OpaServer``, so the tests' assertions never know which one ran. The container uses the host's
network, so it reaches a bundle server or collector the test started on 127.0.0.1, and every path a
test passes (configs, keys, bundles) is mounted read-only at the same path inside it; it runs as the
host's user, so it reads what the test wrote.

Tests take the session fixture ``opa_mode`` (``local`` and ``container``, each test runs on both) and
pass it on; ``REGOGATE_TEST_OPA=local`` or ``container`` keeps one of them. The container image is the
locally built ``regogate-test/opa`` (tests/images.py), or ``$REGOGATE_TEST_OPA_IMAGE``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from tests import images
from tests.conftest import find_opa_binary, free_tcp_port, stop_process
from tests.engine import MODES, require_container, require_mode

#: The official image at the version the project pins; ``-static`` has no shell, so readiness is an HTTP probe.
OPA_IMAGE = f"openpolicyagent/opa:{images.OPA_VERSION}-static"
#: OPA listens in well under a second; pulling a first bundle over loopback adds little. The rest is CI slack.
START_TIMEOUT = 15.0
#: Readiness probes are one local GET each.
POLL_INTERVAL = 0.05
#: How long OPA may take to exit on SIGTERM before it is killed.
STOP_TIMEOUT = 5.0
DECISION_LOG_TYPE = "openpolicyagent.org/decision_logs"

Mode = Literal["container", "local"]


@dataclass
class OpaServer:
    """A running OPA: its URL, how it runs, and its console output (OPA's log and decision log)."""

    url: str
    port: int
    mode: Mode
    _read_logs: Any = field(repr=False)

    def logs(self) -> str:
        """Everything OPA printed so far."""
        text: str = self._read_logs()
        return text

    def decision_log(self) -> list[dict[str, Any]]:
        """The console decision-log events OPA printed so far, oldest first."""
        events = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                with suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict) and record.get("type") == DECISION_LOG_TYPE:
                        events.append(record)
        return events

    def get(self, path: str) -> httpx.Response:
        """A GET on OPA's API, e.g. ``/v1/data/system/bundles``."""
        return httpx.get(self.url + path, timeout=2.0)

    def revisions(self) -> dict[str, str]:
        """Each active bundle's revision, from ``data.system.bundles``."""
        result = self.get("/v1/data/system/bundles").json().get("result", {})
        return {name: entry["manifest"].get("revision", "") for name, entry in result.items()}


def _wait_ready(url: str, *, bundles: bool, exited: Any, logs: Any) -> None:
    probe = f"{url}/health?bundles" if bundles else f"{url}/health"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with suppress(httpx.TransportError):
            if httpx.get(probe, timeout=1.0).status_code == 200:
                return
        if exited():
            raise RuntimeError(f"OPA exited before it was ready; its output:\n{logs()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"OPA was not ready ({probe}) within {START_TIMEOUT} s; its output:\n{logs()}")
        time.sleep(POLL_INTERVAL)


@contextmanager
def opa_server(
    args: Sequence[str],
    *,
    mounts: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    wait_for_bundles: bool = True,
    mode: Mode = "local",
) -> Iterator[OpaServer]:
    """Run ``opa run --server --addr 127.0.0.1:PORT ARGS`` until the block ends, as ``mode`` says.

    ``mounts`` are the host paths ``args`` refer to (mounted into the container at the same path);
    ``env`` is OPA's environment (its config may substitute ``${VAR}``); ``wait_for_bundles`` waits for
    ``/health?bundles`` rather than ``/health``.
    """
    port = port or free_tcp_port()
    url = f"http://127.0.0.1:{port}"
    argv = ["run", "--server", "--addr", f"127.0.0.1:{port}", "--skip-version-check", *args]
    if mode == "container":
        with _container(argv, mounts, env or {}, url, wait_for_bundles) as server:
            yield OpaServer(url=url, port=port, mode="container", _read_logs=server)
        return
    with _local(argv, env or {}, url, wait_for_bundles) as read_logs:
        yield OpaServer(url=url, port=port, mode="local", _read_logs=read_logs)


def test_image() -> str:
    """The image the container path runs: the locally built one unless ``$REGOGATE_TEST_OPA_IMAGE`` says."""
    return os.environ.get("REGOGATE_TEST_OPA_IMAGE") or images.OPA_IMAGE


@pytest.fixture(scope="session", params=MODES)
def opa_mode(request: pytest.FixtureRequest) -> Mode:
    """Each test that takes it runs once on the local binary and once in a container."""
    mode: Mode = request.param
    require_mode(mode, "REGOGATE_TEST_OPA")
    if mode == "container":
        require_container(test_image())
    return mode


@contextmanager
def _local(argv: list[str], env: Mapping[str, str], url: str, wait: bool) -> Iterator[Any]:
    with tempfile.TemporaryDirectory(prefix="regogate-opa-test-") as tmp:
        log_path = Path(tmp) / "opa.log"
        with log_path.open("wb") as sink:
            process = subprocess.Popen(
                [find_opa_binary(), *argv],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )

        def read_logs() -> str:
            return log_path.read_text(encoding="utf-8", errors="replace")

        try:
            _wait_ready(url, bundles=wait, exited=lambda: process.poll() is not None, logs=read_logs)
            yield read_logs
        finally:
            stop_process(process, signal.SIGTERM, STOP_TIMEOUT)


@contextmanager
def _container(argv: list[str], mounts: Sequence[Path], env: Mapping[str, str], url: str, wait: bool) -> Iterator[Any]:
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(test_image())
        .with_command(argv)
        .with_kwargs(network_mode="host", user=f"{os.getuid()}:{os.getgid()}")
    )
    for path in mounts:
        resolved = str(Path(path).resolve())
        container = container.with_volume_mapping(resolved, resolved, "ro")
    for name, value in env.items():
        container = container.with_env(name, value)
    container.start()

    def read_logs() -> str:
        output: bytes = container.get_wrapped_container().logs(stdout=True, stderr=True)
        return output.decode("utf-8", errors="replace")

    def exited() -> bool:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status in ("exited", "dead"))

    try:
        _wait_ready(url, bundles=wait, exited=exited, logs=read_logs)
        yield read_logs
    finally:
        container.stop()
