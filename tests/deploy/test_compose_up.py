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
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
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

from regogate.converters import Bundle, gate_bundle, mask_bundle, sign_bundle, write_bundle
from regogate.proxy.policy import DEFAULT_DECISION_PATH
from tests import images
from tests.conftest import ROOT, find_opa_binary, free_tcp_port
from tests.deploy.conftest import (
    BUNDLE_NAMES,
    DEPLOY,
    FAST_POLLING,
    Collector,
    SigningKeys,
    find_docker_compose,
    python_bundle,
    python_policy,
)
from tests.e2e.harness import SERVERS, text
from tests.e2e.serve_harness import mcp_session
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
class Org:
    """What the organisation override (deploy/compose.org.yml) needs: signing keys and a log collector."""

    keys: SigningKeys
    collector: Collector

    def env(self) -> dict[str, str]:
        return {"REGOGATE_LOG_COLLECTOR": self.collector.url}


@dataclass(frozen=True)
class Composed:
    project: str
    opa_url: str
    redis_url: str
    bundles: Path
    org: Org | None
    logs: Callable[[], str]

    def publish(self, name: str, bundle: Bundle) -> None:
        """Put a bundle on the bundle server, signed when the organisation's override is up."""
        if self.org is not None:
            bundle = sign_bundle(bundle, opa_bin=find_opa_binary(), signing_key=self.org.keys.private)
        write_bundle(bundle, self.bundles / f"{name}.tar.gz")


def _opa_command(files: Sequence[Path], env: dict[str, str], opa_port: int) -> list[str]:
    """The OPA service's command as the compose files say, listening on loopback at ``opa_port``."""
    done = _compose("regogate-config", files, "config", timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    command: list[str] = yaml.safe_load(done.stdout)["services"]["opa"]["command"]
    assert "--addr=0.0.0.0:8181" in command
    return [f"--addr=127.0.0.1:{opa_port}" if arg.startswith("--addr=") else arg for arg in command]


def _override(
    tmp: Path, nginx_port: int, opa_port: int, redis_port: int, org: Org | None, gateway_port: int | None = None
) -> Path:
    site = (DEPLOY / "nginx" / "bundles.conf").read_text(encoding="utf-8")
    assert "listen 80;" in site
    conf = tmp / "bundles.conf"
    conf.write_text(site.replace("listen 80;", f"listen 127.0.0.1:{nginx_port};"), encoding="utf-8")
    polling = [a for n in BUNDLE_NAMES for s in FAST_POLLING for a in ("--set", f"bundles.{n}.polling.{s}")]
    files, env = [ROOT / "docker-compose.yml"], {}
    opa: dict[str, Any] = {"image": images.OPA_IMAGE, "network_mode": "host"}
    if org is not None:
        files.append(ROOT / "deploy" / "compose.org.yml")
        env = org.env()
        polling += ["--set", "decision_logs.reporting.min_delay_seconds=1"]
        polling += ["--set", "decision_logs.reporting.max_delay_seconds=1"]
        # Compose merges volumes by their path in the container: the test's key replaces build/keys.
        # The image's OPA runs as an unprivileged user, who must be able to read it (as in build/keys).
        keys = tmp / "keys"
        keys.mkdir(mode=0o755)
        shutil.copyfile(org.keys.public, keys / org.keys.public.name)
        (keys / org.keys.public.name).chmod(0o644)
        opa["volumes"] = [f"{keys}:/etc/regogate/keys:ro"]
    opa["command"] = [*_opa_command(files, env, opa_port), *polling]
    opa["environment"] = {"REGOGATE_BUNDLE_SERVER": f"http://127.0.0.1:{nginx_port}/bundles"}
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
            "opa": opa,
            "redis": {
                "image": images.REDIS_IMAGE,
                "network_mode": "host",
                "command": ["redis-server", "--appendonly", "yes", "--bind", "127.0.0.1", "--port", str(redis_port)],
                "healthcheck": {"test": ["CMD", "redis-cli", "-p", str(redis_port), "ping"]},
            },
        },
    }
    if gateway_port is not None:
        override["services"]["gateway"] = _gateway_service(files, env, opa_port, redis_port, gateway_port)
    path = tmp / "compose.test.yml"
    path.write_text(yaml.safe_dump(override, sort_keys=False), encoding="utf-8")
    return path


def _gateway_service(
    files: Sequence[Path], env: dict[str, str], opa_port: int, redis_port: int, port: int
) -> dict[str, Any]:
    """The gateway service as the compose files say, with the local image and this run's loopback ports."""
    done = _compose("regogate-config", files, "--profile", "gateway", "config", timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    service = yaml.safe_load(done.stdout)["services"]["gateway"]
    moved = {
        "--opa-url=": f"--opa-url=http://127.0.0.1:{opa_port}",
        "--state=": f"--state=redis://127.0.0.1:{redis_port}/0",
        "--listen=": f"--listen=127.0.0.1:{port}",
    }
    command = []
    for arg in service["command"]:
        prefix = next((p for p in moved if arg.startswith(p)), None)
        command.append(moved.pop(prefix) if prefix is not None else arg)
    assert not moved, f"the gateway service no longer passes {sorted(moved)}"
    (check,) = [a for a in service["healthcheck"]["test"] if "8765" in a]
    probe = [*service["healthcheck"]["test"][:-1], check.replace("8765", str(port))]
    return {"image": images.GATEWAY_IMAGE, "command": command, "healthcheck": {"test": probe, "interval": "1s"}}


def _compose(
    project: str, files: Sequence[Path], *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [*find_docker_compose(), "-p", project, "--project-directory", str(ROOT)]
    argv += [a for f in files for a in ("-f", str(f))]
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _resolve(project: str, override: Path, org: Org | None, *, gateway: bool = False) -> Path:
    """docker-compose.yml with the override, merged by compose itself, minus the published ports.

    Compose merges ``ports`` lists rather than replacing them, and port publishing is refused with
    the host's network (the services listen on loopback directly), so they are dropped here.
    """
    files = [ROOT / "docker-compose.yml", *([ROOT / "deploy" / "compose.org.yml"] if org else []), override]
    profiles = ["--profile", "gateway"] if gateway else []
    done = _compose(project, files, *profiles, "config", timeout=60, env=org.env() if org else None)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    if not gateway:
        config["services"] = {k: v for k, v in config["services"].items() if not v.get("profiles")}
    for name, service in config["services"].items():
        if name == "gateway":  # on the host's network already, and built here from the wheel, not by compose
            assert service["network_mode"] == "host" and "ports" not in service
            service.pop("build")
            continue
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


@contextmanager
def compose_up(tmp_path: Path, org: Org | None = None, *, gateway_port: int | None = None) -> Iterator[Composed]:
    """The team setup (with the organisation's override when ``org`` is given), up on the test engine;
    with ``gateway_port``, the ``gateway`` profile too, listening there.

    Taken down with its volumes when the block ends; nothing of the project may be left.
    """
    needed = [images.NGINX_IMAGE, images.OPA_IMAGE, images.REDIS_IMAGE, images.REGOGATE_IMAGE]
    for image in [*needed, *([images.GATEWAY_IMAGE] if gateway_port is not None else [])]:
        require_container(image)
    (tmp_path / "bundles").mkdir()
    policy = python_policy(tmp_path)
    ports = free_tcp_port(), free_tcp_port(), free_tcp_port()
    project = f"regogate-test-{uuid.uuid4().hex[:10]}"
    gateway = gateway_port is not None
    override = _override(tmp_path, *ports, org, gateway_port)
    files = [_resolve(project, override, org, gateway=gateway)]
    profiles = ["--profile", "gateway"] if gateway else []

    def logs() -> str:
        return _compose(project, files, *profiles, "logs", "--no-color", timeout=60).stdout

    composed = Composed(
        project,
        f"http://127.0.0.1:{ports[1]}",
        f"redis://127.0.0.1:{ports[2]}/0",
        tmp_path / "bundles",
        org,
        logs,
    )
    for name, bundle in (("gate", gate_bundle()), ("python", python_bundle(policy)), ("mask", mask_bundle("hash"))):
        composed.publish(name, bundle)

    try:
        up = _compose(project, files, *profiles, "up", "-d", timeout=UP_TIMEOUT)
        assert up.returncode == 0, up.stderr
        _wait("OPA with its bundles", lambda: _opa_ready(composed.opa_url), logs)
        _wait("Redis", lambda: _redis_ready(composed.redis_url), logs)
        yield composed
    finally:
        down = _compose(
            project, files, *profiles, "down", "--volumes", "--remove-orphans", "--timeout", "5", timeout=DOWN_TIMEOUT
        )
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


async def test_composed_team_setup_gates_a_regogate_container_and_counts_in_redis(tmp_path: Path) -> None:
    with compose_up(tmp_path) as composed:
        await _gate_and_count(composed, tmp_path)


async def _gate_and_count(composed: Composed, tmp_path: Path) -> None:
    policy = python_policy(tmp_path)
    prefix = f"team-{uuid.uuid4().hex[:8]}"
    flags = ["--opa-url", composed.opa_url, "--state", composed.redis_url, "--state-prefix", prefix]
    with anyio.fail_after(SESSION_TIMEOUT + CHANGE_TIMEOUT):
        async with regogate_container(policy, flags) as session:
            allowed = await session.call_tool("black", {"path": "."})
            composed.publish("python", python_bundle(python_policy(tmp_path, frozen_black=True)))
            with anyio.fail_after(CHANGE_TIMEOUT):
                while not (denied := await session.call_tool("black", {"path": "."})).is_error:
                    await anyio.sleep(POLL)
    assert not allowed.is_error and "would run: black ." in text(allowed)
    assert text(denied) == "[POLICY DENIED] black is frozen for the release"
    with Redis.from_url(composed.redis_url, decode_responses=True) as redis:
        assert any(key.startswith(prefix) for key in redis.scan_iter(f"{prefix}*"))


async def test_composed_org_setup_verifies_signed_bundles_and_ships_decisions_to_the_collector(
    tmp_path: Path, signing_keys: SigningKeys, collector: Collector
) -> None:
    org = Org(signing_keys, collector)
    with compose_up(tmp_path, org) as composed:
        await _gate_and_count(composed, tmp_path)  # the policy change arrives signed, so OPA takes it
        refusals = composed.logs().count("Bundle load failed")
        # black allowed again, but nobody signed it: OPA refuses it and keeps the signed revision
        write_bundle(python_bundle(python_policy(tmp_path)), composed.bundles / "python.tar.gz")
        with anyio.fail_after(CHANGE_TIMEOUT):
            while composed.logs().count("Bundle load failed") == refusals:
                await anyio.sleep(POLL)
        with anyio.fail_after(SESSION_TIMEOUT + CHANGE_TIMEOUT):
            async with regogate_container(python_policy(tmp_path), ["--opa-url", composed.opa_url]) as session:
                still_denied = await session.call_tool("black", {"path": "."})
            while not (shipped := _calls_of(collector, "black")):
                await anyio.sleep(POLL)
    assert text(still_denied) == "[POLICY DENIED] black is frozen for the release"
    # The mask bundle keeps the arguments out of the shipped log; their keyed hash stands in for them.
    tools = [e["input"]["tool"] for e in shipped]
    assert all("arguments" not in t and t["arguments_hash"] for t in tools), tools


def _calls_of(collector: Collector, tool: str) -> list[dict[str, Any]]:
    """The shipped decision-log events of calls to ``tool`` (the start-up probe and listings are left out)."""
    events = [e for e in collector.received() if e.get("path") == DEFAULT_DECISION_PATH]
    return [e for e in events if e.get("input", {}).get("tool", {}).get("name") == tool]


def _gateway_health(project: str) -> str:
    """The Docker healthcheck's verdict on the gateway container (its command runs inside the image)."""
    client = docker_client()
    try:
        label = [f"com.docker.compose.project={project}", "com.docker.compose.service=gateway"]
        (container,) = client.containers.list(filters={"label": label})
        return str(container.attrs["State"].get("Health", {}).get("Status", "none"))
    finally:
        client.close()


async def test_the_gateway_profile_serves_an_sdk_client_over_http_decided_by_the_composed_opa(tmp_path: Path) -> None:
    port = free_tcp_port()
    with compose_up(tmp_path, gateway_port=port) as composed:
        base = f"http://127.0.0.1:{port}"
        _wait("the gateway", lambda: _gateway_health(composed.project) == "healthy", composed.logs)
        with anyio.fail_after(SESSION_TIMEOUT):
            async with mcp_session(f"{base}/mcp") as session:
                names = {tool.name for tool in (await session.list_tools()).tools}
                denied = await session.call_tool("get_current_time", {"timezone": "UTC"})
        logs = composed.logs()
    assert names == {"get_current_time", "convert_time"}  # mcp-server-time, spawned in the container for the session
    assert denied.is_error and text(denied).startswith("[POLICY DENIED]"), text(
        denied
    )  # the python policy: default deny
    assert f"serving MCP on {base}/mcp" in logs


def test_the_gateway_build_context_is_the_source_the_wheel_needs_and_nothing_else(tmp_path: Path) -> None:
    """.dockerignore: `docker compose build` sends no virtualenv, node_modules, .git or test output."""
    require_container(images.REGOGATE_IMAGE)  # an engine answers (the image itself is not used)
    client = docker_client()
    tag = f"regogate-test/context:{uuid.uuid4().hex[:10]}"
    try:
        # The same context as the gateway service's build (the checkout), copied whole into an empty image.
        dockerfile = tmp_path / "Dockerfile"
        dockerfile.write_text("FROM scratch\nCOPY . /src\n", encoding="utf-8")
        client.images.build(path=str(ROOT), dockerfile=str(dockerfile), tag=tag, rm=True)
        container = client.containers.create(tag, command=["none"])
        try:
            with (tmp_path / "context.tar").open("wb") as out:
                for chunk in container.export():
                    out.write(chunk)
        finally:
            container.remove()
    finally:
        with suppress(Exception):
            client.images.remove(tag, force=True)
        client.close()
    with tarfile.open(tmp_path / "context.tar") as tar:
        names = [n for n in tar.getnames() if n.startswith("src/")]
        tar.extractall(tmp_path / "context", members=[m for m in tar.getmembers() if m.name.startswith("src/")])
    tops = {n.split("/")[1] for n in names if n.count("/") >= 1 and n.split("/")[1]}
    assert tops == {"pyproject.toml", "README.md", "LICENSE", "core", "proxy", "converters", "rego", "testing"}
    assert not [n for n in names if "__pycache__" in n]
    wheel = ["wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheel"), str(tmp_path / "context" / "src")]
    built = subprocess.run(
        [sys.executable, "-m", "pip", *wheel],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert list((tmp_path / "wheel").glob("regogate-*.whl"))
