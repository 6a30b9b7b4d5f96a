"""The upstream process: environment, exit status, signals, and no orphans however regogate ends."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from regogate.core import ConfigError
from regogate.proxy.relay._upstream import Upstream, exit_status
from tests.conftest import alive
from tests.proxy.conftest import EOF_IGNORER, EVERYTHING, STEP, receive_json
from tests.proxy.test_relay import initialize

pytestmark = pytest.mark.anyio

TEARDOWN_BUDGET = 1.5
"""Graces are 0.5 s + 0.5 s; a host gives 2 s before its own SIGTERM."""


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for init to reap."""
    return not alive(pid)


async def wait_gone(pid: int, timeout: float) -> bool:
    """Wait on a pidfd (it works for processes that are not our children)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        with anyio.move_on_after(timeout):
            await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    return gone(pid)


async def start_with_eof_ignorer(raw_relay: Callable[..., Upstream], tmp_path: Path) -> tuple[Upstream, int]:
    pidfile = tmp_path / "server.pid"
    relay = raw_relay(sys.executable, EOF_IGNORER, str(pidfile))
    await initialize(relay)  # the server wrote its pid before it read the first line
    return relay, int(pidfile.read_text(encoding="utf-8"))


def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


async def test_closing_stdin_stops_a_server_that_ignores_eof_and_sigterm(
    raw_relay: Callable[..., Upstream], tmp_path: Path
) -> None:
    relay, server = await start_with_eof_ignorer(raw_relay, tmp_path)
    started = time.monotonic()
    await relay.stdin.aclose()
    assert await relay.wait(TEARDOWN_BUDGET + 0.5)
    assert time.monotonic() - started < TEARDOWN_BUDGET
    assert gone(server)
    assert exit_status(relay.returncode or 0) == 128 + signal.SIGKILL


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
async def test_a_signal_to_regogate_reaches_the_server_and_leaves_no_orphan(
    raw_relay: Callable[..., Upstream], tmp_path: Path, signum: int
) -> None:
    relay, server = await start_with_eof_ignorer(raw_relay, tmp_path)
    os.kill(relay.pid, signum)  # only regogate: the server sits in its own process group
    assert await relay.wait(TEARDOWN_BUDGET)
    assert gone(server)
    assert exit_status(relay.returncode or 0) == 128 + signal.SIGKILL


@pytest.mark.slow
async def test_a_server_that_obeys_sigterm_gives_status_143(raw_relay: Callable[..., Upstream]) -> None:
    relay = raw_relay(EVERYTHING)
    with anyio.fail_after(STEP):
        await initialize(relay)
        await relay.stdin.send(b'{"jsonrpc":"2.0","id":2,"method":"ping"}')
        await receive_json(relay.stdout, 2)
    os.kill(relay.pid, signal.SIGTERM)
    assert await relay.wait(TEARDOWN_BUDGET)
    assert exit_status(relay.returncode or 0) == 128 + signal.SIGTERM


async def test_sigkill_of_regogate_still_takes_the_server_down(
    raw_relay: Callable[..., Upstream], tmp_path: Path
) -> None:
    relay, server = await start_with_eof_ignorer(raw_relay, tmp_path)
    os.kill(relay.pid, signal.SIGKILL)  # nothing in regogate runs: the kernel's death signal must do it
    try:
        assert await wait_gone(server, STEP)
    finally:
        if not gone(server):
            os.kill(server, signal.SIGKILL)


@pytest.mark.parametrize(
    ("code", "status"),
    [("import sys; sys.exit(3)", 3), ("import os, signal; os.kill(os.getpid(), signal.SIGUSR1)", 138)],
    ids=["exit-3", "killed-by-sigusr1"],
)
async def test_regogate_exits_with_the_status_of_a_server_that_ends_by_itself(
    raw_relay: Callable[..., Upstream], code: str, status: int
) -> None:
    relay = raw_relay(*python(code))  # the client keeps stdin open throughout
    assert await relay.wait(STEP)
    assert exit_status(relay.returncode or 0) == status
    with anyio.fail_after(STEP):
        assert await relay.stdout.receive() is None


async def test_the_server_gets_the_full_environment(
    raw_relay: Callable[..., Upstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGOGATE_TEST_API_KEY", "s3cret")
    relay = raw_relay(*python("import os, sys; sys.exit(os.environ.get('REGOGATE_TEST_API_KEY') != 's3cret')"))
    assert await relay.wait(STEP)
    assert relay.returncode == 0


async def test_a_server_that_cannot_start_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot start the MCP server"):
        Upstream.spawn([str(tmp_path / "no-such-server")])


def test_exit_status_follows_the_shell_convention() -> None:
    assert [exit_status(c) for c in (0, 3, -signal.SIGTERM, -signal.SIGKILL)] == [0, 3, 143, 137]
