"""Fixtures shared by every test folder: the real OPA binary and policy files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import suppress
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

# Real Redis and OPA servers, each test on the local and the container path (tests/engine.py).
pytest_plugins = ["tests.redis_server", "tests.opa_server"]


def find_opa_binary() -> str:
    """The pinned OPA that `make setup` built; tests never run without a real OPA."""
    for candidate in (
        os.environ.get("REGOGATE_OPA"),
        str(Path(os.environ.get("REGOGATE_CACHE", Path.home() / ".cache" / "regogate")) / "bin" / "opa"),
        shutil.which("opa"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no opa binary: run `make setup` (scripts/setup-opa.sh builds the pinned OPA)")


@pytest.fixture(scope="session")
def opa_bin() -> str:
    return find_opa_binary()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and every regogate it starts) keeps its state in a temp dir, never in the real home."""
    state = tmp_path_factory.mktemp("xdg-state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


def stop_process(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Ask a server the tests started to stop with ``signum``; kill it if it has not exited in ``timeout``."""
    with suppress(ProcessLookupError):
        process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
