"""The pytest plugin (entry point ``pytest11``): fixtures for OPA, Redis and gated MCP sessions.

Images default to the official ones; override them with the ``regogate_opa_image`` and
``regogate_redis_image`` ini options, the ``REGOGATE_OPA_IMAGE`` and ``REGOGATE_REDIS_IMAGE``
variables, or by overriding the fixtures of the same names. Without a Docker engine, or when an
image is missing and cannot be pulled, a test that needs a container is skipped with one line
saying why; set ``regogate_require_containers = true`` (or ``REGOGATE_REQUIRE_CONTAINERS=1``) to
make that a failure, as a CI where the engine must work wants.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from regogate.testing._containers import (
    DEFAULT_OPA_IMAGE,
    DEFAULT_REDIS_IMAGE,
    ContainerUnavailable,
    OpaContainer,
    RedisContainer,
    docker_client,
    ensure_image,
)

if TYPE_CHECKING:
    from regogate.testing._session import GatedSession

OpaFactory = Callable[..., OpaContainer]
SessionFactory = Callable[..., AbstractAsyncContextManager["GatedSession"]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("regogate_opa_image", "OPA image for the regogate_opa fixture", default="")
    parser.addini("regogate_redis_image", "Redis image for the regogate_redis fixture", default="")
    parser.addini(
        "regogate_require_containers", "fail, rather than skip, when a container cannot run", type="bool", default=False
    )


def _setting(config: pytest.Config, ini: str, variable: str, default: str) -> str:
    return os.environ.get(variable) or str(config.getini(ini) or "") or default


@pytest.fixture(scope="session")
def regogate_opa_image(pytestconfig: pytest.Config) -> str:
    """The OPA image ``regogate_opa`` runs."""
    return _setting(pytestconfig, "regogate_opa_image", "REGOGATE_OPA_IMAGE", DEFAULT_OPA_IMAGE)


@pytest.fixture(scope="session")
def regogate_redis_image(pytestconfig: pytest.Config) -> str:
    """The Redis image ``regogate_redis`` runs."""
    return _setting(pytestconfig, "regogate_redis_image", "REGOGATE_REDIS_IMAGE", DEFAULT_REDIS_IMAGE)


@pytest.fixture(scope="session")
def regogate_require_containers(pytestconfig: pytest.Config) -> bool:
    """Whether a container that cannot run fails the test (else it is skipped)."""
    forced = os.environ.get("REGOGATE_REQUIRE_CONTAINERS", "")
    if forced:
        return forced.lower() in ("1", "true", "yes")
    return bool(pytestconfig.getini("regogate_require_containers"))


def _unavailable(problem: ContainerUnavailable, required: bool) -> None:
    if required:
        pytest.fail(f"regogate.testing: {problem}", pytrace=False)
    pytest.skip(f"regogate.testing: {problem}")


@pytest.fixture(scope="session")
def regogate_docker(regogate_require_containers: bool) -> Iterator[Any]:
    """A client of the Docker engine (skips or fails when none answers)."""
    try:
        client = docker_client()
    except ContainerUnavailable as problem:
        _unavailable(problem, regogate_require_containers)
    try:
        yield client
    finally:
        client.close()


def _bundles(policies: Sequence[str | Path], workdir: Path) -> list[Path]:
    from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle

    out = workdir / "bundles"
    gate = out / "gate"
    write_bundle(gate_bundle(), gate)
    dirs = [gate]
    for policy in policies:
        path = Path(policy)
        if path.is_dir():  # a Rego bundle, as it is
            dirs.append(path)
            continue
        target = out / path.stem
        write_bundle(policy_bundle(load_policy(path), path.read_text(encoding="utf-8")), target)
        dirs.append(target)
    return dirs


@pytest.fixture
def regogate_opa(
    regogate_docker: Any, regogate_opa_image: str, regogate_require_containers: bool, tmp_path: Path
) -> Iterator[OpaFactory]:
    """Start OPA in a container with the gate and each policy converted to a bundle: ``regogate_opa(*policies)``.

    A policy is a YAML file (converted as ``regogate convert`` does) or a Rego bundle directory.
    The returned ``OpaContainer`` has the ``url`` to pass as ``--opa-url``; containers stop at the
    end of the test.
    """
    started: list[OpaContainer] = []

    def start(*policies: str | Path) -> OpaContainer:
        try:
            ensure_image(regogate_docker, regogate_opa_image)
        except ContainerUnavailable as problem:
            _unavailable(problem, regogate_require_containers)
        workdir = tmp_path / f"opa-{len(started)}"
        bundles = _bundles(policies, workdir)
        opa = OpaContainer.start(regogate_opa_image, bundles, user=f"{os.getuid()}:{os.getgid()}")
        started.append(opa)
        return opa

    try:
        yield start
    finally:
        for opa in started:
            opa.stop()


@pytest.fixture
def regogate_redis(
    regogate_docker: Any, regogate_redis_image: str, regogate_require_containers: bool
) -> Iterator[RedisContainer]:
    """Redis in a container for the test (``url`` for ``--state``), without persistence."""
    try:
        ensure_image(regogate_docker, regogate_redis_image)
    except ContainerUnavailable as problem:
        _unavailable(problem, regogate_require_containers)
    redis = RedisContainer.start(regogate_redis_image)
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
def regogate_session(request: pytest.FixtureRequest, tmp_path: Path) -> SessionFactory:
    """Open an MCP session through regogate: ``async with regogate_session(policy, server_cmd) as client``.

    ``client`` is the SDK's ``ClientSession`` (a ``GatedSession``) whose calls pass regogate.
    ``opa="container"`` (the default) decides in an OPA container loaded with the converted policy;
    ``opa="embedded"`` lets regogate run its own OPA binary; a URL uses that OPA. ``flags`` are more
    ``regogate run`` flags (e.g. ``["--state", regogate_redis.url]``), ``env`` the server's extra
    environment.
    """

    @asynccontextmanager
    async def open_session(
        policy: str | Path,
        server_cmd: Sequence[str],
        *,
        opa: str = "container",
        flags: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> AsyncIterator[GatedSession]:
        from regogate.testing._session import open_gated_session

        if opa == "container":
            factory: OpaFactory = request.getfixturevalue("regogate_opa")
            opa_url: str | None = factory(policy).url
        elif opa == "embedded":
            opa_url = None
        else:
            opa_url = opa
        async with open_gated_session(
            policy, server_cmd, workdir=tmp_path, opa_url=opa_url, flags=flags, env=env
        ) as session:
            yield session

    return open_session
