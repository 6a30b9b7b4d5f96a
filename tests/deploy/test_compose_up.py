"""docker-compose.yml brought up for real, and regogate's own image gating a session against it.

``docker-compose up`` runs the team setup on the test engine with an override that substitutes the
locally built images (no registry is reachable) and puts every service on the host's network, on
loopback and free ports (several test runs share the machine). OPA polls the bundle server nginx
serves; the MCP client spawns regogate from the ``regogate-test/regogate`` image (installed from
the wheel), pointed at the composed OPA and Redis, with a real MCP server inside the container.
The project is taken down with its volumes at the end, leaving nothing running.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from mcp import StdioServerParameters
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client
from redis import Redis

from regogate.converters import gate_bundle, mask_bundle, write_bundle
from tests import images
from tests.conftest import ROOT, free_tcp_port
from tests.deploy.conftest import BUNDLE_NAMES, DEPLOY, FAST_POLLING, find_docker_compose, python_bundle, python_policy
from tests.e2e.harness import SERVERS, text
from tests.engine import docker_client, require_container

pytestmark = pytest.mark.anyio

#: Containers from local images start in seconds; OPA then fetches three bundles over loopback.
UP_TIMEOUT = 90
#: `down` stops three containers (nginx and Redis exit at once on SIGTERM).
DOWN_TIMEOUT = 90
#: A session through a container: docker run, Python start-up, the first decision.
SESSION_TIMEOUT = 60
#: OPA polls every second here.
CHANGE_TIMEOUT = 15
POLL = 0.2


@dataclass(frozen=True)
class Composed:
    project: str
    opa_url: str
    redis_url: str
    bundles: Path


def _override(tmp: Path, nginx_port: int, opa_port: int, redis_port: int) -> Path:
    site = (DEPLOY / "nginx" / "bundles.conf").read_text(encoding="utf-8")
    assert "listen 80;" in site
    conf = tmp / "bundles.conf"
    conf.write_text(site.replace("listen 80;", f"listen 127.0.0.1:{nginx_port};"), encoding="utf-8")
    polling = [a for n in BUNDLE_NAMES for s in FAST_POLLING for a in ("--set", f"bundles.{n}.polling.{s}")]
    override = {
        "services": {
            "bundles": {
                "image": images.NGINX_IMAGE,
                "network_mode": "host",
                "volumes": [
                    f"{conf}:/etc/nginx/conf.d/default.conf:ro",
                    f"{tmp / 'bundles'}:/usr/share/nginx/html/bundles:ro",
                ],
            },
            "opa": {
                "image": images.OPA_IMAGE,
                "network_mode": "host",
                "command": [
                    "run",
                    "--server",
                    f"--addr=127.0.0.1:{opa_port}",
                    "--config-file=/etc/regogate/opa/team.yaml",
                    "--skip-version-check",
                    *polling,
                ],
                "environment": {"REGOGATE_BUNDLE_SERVER": f"http://127.0.0.1:{nginx_port}/bundles"},
            },
            "redis": {
                "image": images.REDIS_IMAGE,
                "network_mode": "host",
                "command": ["redis-server", "--appendonly", "yes", "--bind", "127.0.0.1", "--port", str(redis_port)],
                "healthcheck": {"test": ["CMD", "redis-cli", "-p", str(redis_port), "ping"]},
            },
        },
    }
    path = tmp / "compose.test.yml"
    path.write_text(yaml.safe_dump(override, sort_keys=False), encoding="utf-8")
    return path


def _compose(project: str, files: Sequence[Path], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    argv = [*find_docker_compose(), "-p", project, "--project-directory", str(ROOT)]
    argv += [a for f in files for a in ("-f", str(f))]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=dict(os.environ), check=False
    )


def _resolve(project: str, override: Path) -> Path:
    """docker-compose.yml with the override, merged by compose itself, minus the published ports.

    Compose merges ``ports`` lists rather than replacing them, and port publishing is refused with
    the host's network (the services listen on loopback directly), so they are dropped here.
    """
    done = _compose(project, [ROOT / "docker-compose.yml", override], "config", timeout=60)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    for service in config["services"].values():
        assert service.pop("ports"), "the compose file publishes every service's port"
    resolved = override.with_name("compose.resolved.yml")
    resolved.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return resolved


def _wait(what: str, ready: Any, logs: Any) -> None:
    deadline = time.monotonic() + UP_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} was not ready within {UP_TIMEOUT} s; the services' output:\n{logs()}")
        time.sleep(POLL)


def _opa_ready(url: str) -> bool:
    with suppress(httpx.TransportError):
        return httpx.get(f"{url}/health?bundles", timeout=2.0).status_code == 200
    return False


def _redis_ready(url: str) -> bool:
    with suppress(OSError, Exception), Redis.from_url(url, socket_timeout=2.0) as client:
        return bool(client.ping())
    return False


def _leftovers(project: str) -> list[str]:
    client = docker_client()
    try:
        label = f"com.docker.compose.project={project}"
        containers = [c.name for c in client.containers.list(all=True, filters={"label": label})]
        volumes = [v.name for v in client.volumes.list(filters={"label": label})]
        return containers + volumes
    finally:
        client.close()


@pytest.fixture
def composed(tmp_path: Path) -> Iterator[Composed]:
    """The team setup, up on the test engine; down (with its volumes) when the test ends."""
    for image in (images.NGINX_IMAGE, images.OPA_IMAGE, images.REDIS_IMAGE, images.REGOGATE_IMAGE):
        require_container(image)
    (tmp_path / "bundles").mkdir()
    policy = python_policy(tmp_path)
    for name, bundle in (("gate", gate_bundle()), ("python", python_bundle(policy)), ("mask", mask_bundle("hash"))):
        write_bundle(bundle, tmp_path / "bundles" / f"{name}.tar.gz")
    ports = free_tcp_port(), free_tcp_port(), free_tcp_port()
    project = f"regogate-test-{uuid.uuid4().hex[:10]}"
    files = [_resolve(project, _override(tmp_path, *ports))]
    composed = Composed(
        project, f"http://127.0.0.1:{ports[1]}", f"redis://127.0.0.1:{ports[2]}/0", tmp_path / "bundles"
    )

    def logs() -> str:
        return _compose(project, files, "logs", "--no-color", timeout=60).stdout

    try:
        up = _compose(project, files, "up", "-d", timeout=UP_TIMEOUT)
        assert up.returncode == 0, up.stderr
        _wait("OPA with its bundles", lambda: _opa_ready(composed.opa_url), logs)
        _wait("Redis", lambda: _redis_ready(composed.redis_url), logs)
        yield composed
    finally:
        down = _compose(project, files, "down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=DOWN_TIMEOUT)
        assert down.returncode == 0, down.stderr
        assert _leftovers(project) == []


@asynccontextmanager
async def regogate_container(policy: Path, flags: Sequence[str]) -> AsyncIterator[ClientSession]:
    """An SDK session whose server is regogate in its image, gating the stand-in server beside it."""
    standin = SERVERS / "python_standin.py"
    argv = ["run", "-i", "--rm", "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp"]
    for path in (policy, standin):
        argv += ["-v", f"{path}:{path}:ro"]
    argv += [images.REGOGATE_IMAGE, "-c", str(policy), *flags, "--", "python3.11", str(standin)]
    params = StdioServerParameters(command="docker", args=argv, env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def test_composed_team_setup_gates_a_regogate_container_and_counts_in_redis(
    composed: Composed, tmp_path: Path
) -> None:
    policy = python_policy(tmp_path)
    prefix = f"team-{uuid.uuid4().hex[:8]}"
    flags = ["--opa-url", composed.opa_url, "--state", composed.redis_url, "--state-prefix", prefix]
    with anyio.fail_after(SESSION_TIMEOUT + CHANGE_TIMEOUT):
        async with regogate_container(policy, flags) as session:
            allowed = await session.call_tool("black", {"path": "."})
            write_bundle(python_bundle(python_policy(tmp_path, frozen_black=True)), composed.bundles / "python.tar.gz")
            with anyio.fail_after(CHANGE_TIMEOUT):
                while not (denied := await session.call_tool("black", {"path": "."})).is_error:
                    await anyio.sleep(POLL)
    assert not allowed.is_error and "would run: black ." in text(allowed)
    assert text(denied) == "[POLICY DENIED] black is frozen for the release"
    with Redis.from_url(composed.redis_url, decode_responses=True) as redis:
        assert any(key.startswith(prefix) for key in redis.scan_iter(f"{prefix}*"))
