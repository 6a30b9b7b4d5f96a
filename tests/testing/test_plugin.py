"""The plugin in a user's project: a container it cannot run is one skipped line, or a failure when required."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests import images
from tests.engine import require_container

pytest_plugins = ["pytester"]

NEEDS_REDIS = """
def test_uses_redis(regogate_redis):
    assert regogate_redis.url.startswith("redis://127.0.0.1:")
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, **env: str) -> pytest.RunResult:
    for name in ("REGOGATE_REQUIRE_CONTAINERS", "REGOGATE_REDIS_IMAGE", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_user=NEEDS_REDIS)
    return pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider", timeout=120)


def test_without_an_engine_the_test_is_skipped_with_one_line_saying_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, DOCKER_HOST=f"unix:///tmp/regogate-no-engine-{uuid.uuid4().hex}.sock")
    result.assert_outcomes(skipped=1)
    [line] = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert "regogate.testing: no Docker engine" in line


def test_without_an_engine_a_project_that_requires_containers_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(
        pytester,
        monkeypatch,
        DOCKER_HOST=f"unix:///tmp/regogate-no-engine-{uuid.uuid4().hex}.sock",
        REGOGATE_REQUIRE_CONTAINERS="1",
    )
    result.assert_outcomes(errors=1)
    assert any("regogate.testing: no Docker engine" in line for line in result.outlines)


def test_an_image_that_cannot_be_pulled_is_skipped_with_one_line_saying_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_container(images.REDIS_IMAGE)  # an engine that answers, without a reachable registry
    missing = f"regogate-test/absent:{uuid.uuid4().hex[:8]}"
    result = _run(pytester, monkeypatch, DOCKER_HOST=os.environ["DOCKER_HOST"], REGOGATE_REDIS_IMAGE=missing)
    result.assert_outcomes(skipped=1)
    [line] = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert f"image {missing} is missing and cannot be pulled" in line


def test_loading_the_plugin_imports_no_test_dependency() -> None:
    # pytest loads it wherever regogate is installed, with or without the [testing] extra.
    probe = "import sys, regogate.testing._plugin; print(sorted({m.split('.')[0] for m in sys.modules}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(done.stdout.strip().strip("[]").replace("'", "").split(", "))
    assert not loaded & {"mcp", "httpx", "testcontainers", "docker", "redis"}
