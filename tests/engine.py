"""Whether the container test paths can run: a Docker engine that answers, and the locally built image.

scripts/with-docker.sh gives ``make test`` an engine (DOCKER_HOST, for the test run only) and builds
the images tests/images.py describes. A test run without one skips the container variants with a
line saying why; in CI (``CI=true``) the engine must work, so the same problem fails the test.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, Final

import pytest

# Ryuk (testcontainers' reaper) is an image that cannot be pulled here; every test stops its own containers.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

#: Whether an engine answers is known within seconds, or it is not worth waiting for.
PROBE_TIMEOUT: Final = 10
MODES: Final = ("local", "container")


@cache
def _engine_problem() -> str | None:
    host = os.environ.get("DOCKER_HOST")
    if not host:
        return "no DOCKER_HOST: run the tests through `make test` (scripts/with-docker.sh) for a Docker engine"
    try:
        import docker
        import docker.errors

        client = docker.DockerClient(base_url=host, timeout=PROBE_TIMEOUT)
    except ImportError as exc:
        return f"no docker package: {exc}"
    except docker.errors.DockerException as exc:
        return f"no Docker engine at {host}: {exc}"
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        return f"no Docker engine answers at {host}: {exc}"
    finally:
        client.close()
    return None


def _image_problem(image: str) -> str | None:
    import docker
    import docker.errors

    client = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=PROBE_TIMEOUT)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return f"image {image} is missing: scripts/with-docker.sh builds it (python -m tests.images)"
    finally:
        client.close()
    return None


def require_container(image: str) -> None:
    """Skip (or, under ``CI=true``, fail) unless an engine answers and ``image`` is there."""
    problem = _engine_problem() or _image_problem(image)
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"container path required in CI: {problem}", pytrace=False)
    pytest.skip(problem)


def require_mode(mode: str, variable: str) -> None:
    """Skip a mode the environment variable ``variable`` (``local`` or ``container``) rules out."""
    forced = os.environ.get(variable, "")
    if forced and forced != mode:
        pytest.skip(f"{variable}={forced}")


def docker_client() -> Any:
    """A client of the engine the tests use (``require_container`` has checked it answers)."""
    import docker

    return docker.DockerClient(base_url=os.environ["DOCKER_HOST"], timeout=PROBE_TIMEOUT)
