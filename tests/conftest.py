"""Fixtures shared by every test folder: the real OPA binary and policy files."""

from __future__ import annotations

import signal
import socket
import subprocess
from contextlib import suppress
from pathlib import Path

import pytest

from regogate.core import ConfigError
from regogate.proxy.policy import find_opa

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

# Real Redis and OPA servers, each test on the local and the container path (tests/engine.py).
pytest_plugins = ["tests.redis_server", "tests.opa_server"]


def find_opa_binary() -> str:
    """The pinned OPA that `make setup` built, found as the product finds it; tests never run without one."""
    try:
        return find_opa(None)
    except ConfigError as exc:
        raise RuntimeError(f"{exc} (scripts/setup-opa.sh builds the pinned OPA)") from exc


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


def free_tcp_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_process(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Ask a server the tests started to stop with ``signum``; kill it if it has not exited in ``timeout``."""
    with suppress(ProcessLookupError):
        process.send_signal(signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
