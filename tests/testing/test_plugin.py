"""The plugin in a user's project: a container it cannot run is one skipped line, or a failure when required."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import images
from tests.engine import require_container

pytest_plugins = ["pytester"]

NEEDS_REDIS = """
def test_uses_redis(regogate_redis):
    assert regogate_redis.url.startswith("redis://127.0.0.1:")
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, **env: str) -> pytest.RunResult:
    """The user's test run, strict about warnings as many projects are (an unclosed socket fails it)."""
    for name in ("REGOGATE_REQUIRE_CONTAINERS", "REGOGATE_REDIS_IMAGE", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_user=NEEDS_REDIS)
    return pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider", "-W", "error", timeout=120)


def test_without_an_engine_the_test_is_skipped_with_one_line_saying_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, DOCKER_HOST=f"unix:///tmp/regogate-no-engine-{uuid.uuid4().hex}.sock")
    result.assert_outcomes(skipped=1)
    [line] = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert "regogate.testing: no Docker engine" in line
    assert result.ret == pytest.ExitCode.OK  # nothing left open that fails the user's run at teardown


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


EMBEDDED_SESSION = """
import sys
import pytest
from regogate.testing import assert_allowed, assert_denied

pytestmark = pytest.mark.anyio
SERVER = [sys.executable, {standin!r}]


async def test_embedded(regogate_session, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'version: "1"\\ndefault: deny\\ntools:\\n  black:\\n    rules: []\\n', encoding="utf-8"
    )
    async with regogate_session(policy, SERVER, opa="embedded") as client:
        allowed = await client.call_tool("black", {{"path": "."}})
        denied = await client.call_tool("conda", {{"command": "create"}})
    assert_allowed(allowed)
    assert_denied(denied)
"""


def test_an_embedded_opa_session_needs_no_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, opa_bin: str
) -> None:
    # A project without Docker still gets real decisions: regogate runs its own OPA binary.
    monkeypatch.setenv("DOCKER_HOST", f"unix:///tmp/regogate-no-engine-{uuid.uuid4().hex}.sock")
    monkeypatch.setenv("REGOGATE_REQUIRE_CONTAINERS", "1")  # a container attempt would fail, not skip
    monkeypatch.setenv("REGOGATE_OPA", opa_bin)
    standin = str(Path(__file__).parents[1] / "servers" / "python_standin.py")
    pytester.makepyfile(test_user=EMBEDDED_SESSION.format(standin=standin))
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)
