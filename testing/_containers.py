"""OPA and Redis in containers on the host's network, for tests; a missing engine or image is reported, not hidden."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = ["ContainerUnavailable", "OpaContainer", "RedisContainer", "docker_client", "ensure_image"]

DEFAULT_OPA_IMAGE: Final = "openpolicyagent/opa:1.22.2-static"
DEFAULT_REDIS_IMAGE: Final = "redis:7.4.2-alpine"
#: Where the docker package looks for an engine when ``DOCKER_HOST`` is not set.
DEFAULT_DOCKER_HOST: Final = "unix:///var/run/docker.sock"
#: A ping of a local engine answers within a second; this is slack for a loaded CI machine.
ENGINE_TIMEOUT: Final = 10
#: A pull over a slow link; a refused one fails at once.
PULL_TIMEOUT: Final = 300
#: OPA and Redis listen within a second or two of their container starting.
START_TIMEOUT: Final = 30.0
#: Readiness probes are one loopback request each.
POLL_INTERVAL: Final = 0.1


class ContainerUnavailable(Exception):
    """No Docker engine answers, or the image is neither here nor pullable; the message says which, in one line."""


def docker_client() -> Any:
    """A client of the engine ``DOCKER_HOST`` (or the default socket) names.

    Raises:
        ContainerUnavailable: no engine answers.
    """
    try:
        import docker
        import docker.errors
    except ImportError as exc:
        raise ContainerUnavailable(f"the docker package is missing: pip install 'regogate[testing]' ({exc})") from exc
    _reach_engine(os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)
    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT)
    except docker.errors.DockerException as exc:
        raise ContainerUnavailable(f"no Docker engine: {_one_line(exc)}") from exc
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        client.close()
        raise ContainerUnavailable(f"no Docker engine answers: {_one_line(exc)}") from exc
    return client


def _reach_engine(host: str) -> None:
    """Connect to the engine's socket once and close it, before the docker package tries.

    docker's client asks the engine for its API version while it is built, and when nobody answers
    it leaves that socket open; pytest then fails the whole run over the unclosed socket.

    Raises:
        ContainerUnavailable: nothing accepts connections at ``host``.
    """
    url = urlsplit(host)
    try:
        if url.scheme in ("unix", "http+unix"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(ENGINE_TIMEOUT)
                probe.connect(url.path)
        elif url.scheme in ("tcp", "http", "https") and url.hostname:
            default_port = 2376 if url.scheme == "https" else 2375
            socket.create_connection((url.hostname, url.port or default_port), timeout=ENGINE_TIMEOUT).close()
    except OSError as exc:
        raise ContainerUnavailable(f"no Docker engine answers at {host}: {_one_line(exc)}") from exc


def ensure_image(client: Any, image: str) -> None:
    """Make sure ``image`` is there, pulling it if it is not.

    Raises:
        ContainerUnavailable: it is missing and cannot be pulled.
    """
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except (docker.errors.DockerException, OSError) as exc:
        raise ContainerUnavailable(f"image {image} is missing and cannot be pulled: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(image: str, command: Sequence[str], *, mounts: Sequence[Path] = (), user: str | None = None) -> Any:
    from testcontainers.core.container import DockerContainer

    options: dict[str, str] = {"network_mode": "host"}
    if user is not None:
        options["user"] = user
    container = DockerContainer(image).with_command(list(command)).with_kwargs(**options)
    for path in mounts:
        resolved = str(Path(path).resolve())
        container = container.with_volume_mapping(resolved, resolved, "ro")
    container.start()
    return container


def _logs(container: Any) -> str:
    output: bytes = container.get_wrapped_container().logs(stdout=True, stderr=True)
    return output.decode("utf-8", errors="replace")


def _wait(ready: Any, container: Any, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            raise RuntimeError(f"{what} exited before it was ready; its output:\n{_logs(container)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {START_TIMEOUT:g} s; its output:\n{_logs(container)}")
        time.sleep(POLL_INTERVAL)


@dataclass
class OpaContainer:
    """OPA serving converted bundles on ``url`` (loopback, host network) until ``stop``."""

    url: str
    image: str
    _container: Any = field(repr=False)

    @classmethod
    def start(cls, image: str, bundles: Sequence[Path], *, user: str | None = None) -> OpaContainer:
        """Run ``opa run --server`` with each bundle directory mounted read-only at its own path."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = ["run", "--server", "--addr", f"127.0.0.1:{port}", "--skip-version-check"]
        argv += [a for path in bundles for a in ("--bundle", str(Path(path).resolve()))]
        container = _start(image, argv, mounts=bundles, user=user)
        opa = cls(url=url, image=image, _container=container)

        def ready() -> bool:
            import httpx

            with suppress(httpx.TransportError):
                return httpx.get(f"{url}/health?bundles", timeout=2.0).status_code == 200
            return False

        try:
            _wait(ready, container, f"OPA ({image})")
        except BaseException:
            container.stop()
            raise
        return opa

    def logs(self) -> str:
        """OPA's console output so far (its log, and decision log when enabled)."""
        return _logs(self._container)

    def stop(self) -> None:
        self._container.stop()


@dataclass
class RedisContainer:
    """Redis without persistence on ``url`` (loopback, host network) until ``stop``."""

    url: str
    image: str
    _container: Any = field(repr=False)

    @classmethod
    def start(cls, image: str) -> RedisContainer:
        port = free_port()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        container = _start(image, command)
        redis = cls(url=f"redis://127.0.0.1:{port}/0", image=image, _container=container)

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        try:
            _wait(ready, container, f"Redis ({image})")
        except BaseException:
            container.stop()
            raise
        return redis

    def stop(self) -> None:
        self._container.stop()
