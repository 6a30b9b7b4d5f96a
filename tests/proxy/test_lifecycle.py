"""Processes die together: however `regogate run` ends, OPA and the upstream's whole tree go with it.

Each test tags the regogate it starts with a unique environment variable, which every descendant
inherits, and watches `/proc` for processes carrying it: regogate, its watchdog, the embedded OPA,
the upstream and the upstream's own children (`bash -c 'helper & exec server'`, `npx` -> `node`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from regogate.proxy.lifecycle import OWNER_FILE, kill_session, process_start_time, session_processes, sweep_stale_dirs
from tests.conftest import ROOT, find_opa_binary

REGOGATE = str(Path(sys.executable).parent / "regogate")
STANDIN = str(ROOT / "tests" / "servers" / "python_standin.py")
SERVERS = ROOT / "tests" / "servers"
#: Start-up of OPA, the server and its helper on a loaded 2-core machine (npx alone takes seconds).
START_TIMEOUT = 60.0
#: The promise: within this long of regogate dying by a signal, nothing of its tree is left.
DEATH_BUDGET = 2.0
#: A clean exit (stdin closed, SIGTERM) runs the upstream's stop sequence before regogate dies.
EXIT_BUDGET = 6.0
POLL = 0.05


def _tagged(marker: str) -> list[tuple[int, str]]:
    """Live processes whose initial environment carries ``REGOGATE_TEST_TREE=<marker>``, with their command."""
    needle = f"REGOGATE_TEST_TREE={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != b"Z":
            found.append((int(entry.name), command))
    return found


def _wait_for(marker: str, *needles: str, timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes = _tagged(marker)
        if all(any(needle in command for _, command in processes) for needle in needles):
            return processes
        time.sleep(POLL)
    raise AssertionError(f"not all of {needles} started within {timeout} s: {_tagged(marker)}")


def _gone_within(marker: str, budget: float) -> float:
    """Seconds until no tagged process is left; fails after ``budget``."""
    started = time.monotonic()
    while time.monotonic() - started < budget:
        if not _tagged(marker):
            return time.monotonic() - started
        time.sleep(POLL)
    raise AssertionError(f"still alive {budget} s after regogate ended: {_tagged(marker)}")


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A unique marker and a private TMPDIR; whatever a failing test leaves behind is killed."""
    marker = uuid.uuid4().hex
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    yield marker, tmp
    for pid, _ in _tagged(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start(marker: str, tmp: Path, upstream: list[str], *, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REGOGATE_OPA": find_opa_binary(), "REGOGATE_TEST_TREE": marker, "TMPDIR": str(tmp)}
    return subprocess.Popen(
        [REGOGATE, "-c", str(ROOT / "policies" / "python.yaml"), "--", *upstream],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )


def _reap(proxy: subprocess.Popen[bytes]) -> None:
    proxy.kill()
    proxy.wait()
    if proxy.stdin is not None:
        proxy.stdin.close()


def _with_helper(server: str) -> list[str]:
    """``bash -c 'helper & exec server'``: the helper is the server's orphan once bash has exec'd."""
    helper = f"{sys.executable} -c 'import time; time.sleep(300)' regogate-test-helper"
    return ["bash", "-c", f"{helper} & exec {server}"]


# SIGKILL gets the heavier tree: npx -> sh -> node, next to the helper.
CASES = {
    "SIGKILL": (["npx", "--no-install", "mcp-server-everything"], "node_modules/.bin/mcp-server-everything"),
    "SIGTERM": ([sys.executable, STANDIN], STANDIN),
    "EOF": ([sys.executable, STANDIN], STANDIN),
}


@pytest.mark.parametrize("how", sorted(CASES))
def test_regogate_ending_takes_opa_the_server_and_the_servers_children(tree: tuple[str, Path], how: str) -> None:
    marker, tmp = tree
    server, shown_as = CASES[how]
    proxy = _start(marker, tmp, _with_helper(" ".join(server)), cwd=SERVERS)
    try:
        _wait_for(marker, "opa", shown_as, "regogate-test-helper", timeout=START_TIMEOUT)
        assert sorted(p.name.split("-")[1] for p in tmp.iterdir()) == ["opa", "run"]
        if how == "EOF":
            assert proxy.stdin is not None
            proxy.stdin.close()
        else:
            proxy.send_signal(getattr(signal, how))
        proxy.wait(timeout=EXIT_BUDGET)
        _gone_within(marker, DEATH_BUDGET)  # counted from regogate's death, whatever ended it
    finally:
        _reap(proxy)
    assert list(tmp.iterdir()) == [], "private directories left behind"


def test_kill_session_reaches_a_process_that_left_the_process_group_and_session() -> None:
    token = uuid.uuid4().hex
    env = {**os.environ, "REGOGATE_SESSION": token}
    escaped = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not session_processes(token) and time.monotonic() < deadline:
            time.sleep(POLL)
        assert session_processes(token) == [escaped.pid]
        assert kill_session(token) == 1
        assert escaped.wait(timeout=5) == -signal.SIGKILL
        assert session_processes(token) == []
    finally:
        escaped.kill()
        escaped.wait()


#: A stand-in for regogate: starts the watchdog (with the shell given, which may not exist), one child in a
#: session of its own, prints the child's pid, then dies by SIGKILL once its stdin closes.
_OWNER = """
import os, signal, subprocess, sys
from regogate.proxy.lifecycle import _watchdog
_watchdog.SHELL = sys.argv[1]
_watchdog.start_watchdog()
child = subprocess.Popen(["sleep", "300"], start_new_session=True)
print(child.pid, flush=True)
sys.stdin.read()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("shell", ["/bin/sh", "/nonexistent/sh"])
def test_the_watchdog_kills_the_tree_with_a_shell_or_without_one(tree: tuple[str, Path], shell: str) -> None:
    marker, tmp = tree
    env = {**os.environ, "REGOGATE_TEST_TREE": marker, "TMPDIR": str(tmp)}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, shell], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    try:
        assert owner.stdout is not None and owner.stdin is not None
        child = int(owner.stdout.readline())
        started = _wait_for(marker, "_watchdog_process.py", "sleep 300", timeout=START_TIMEOUT)
        assert child in [pid for pid, _ in started]
        waiting = [command for _, command in started]
        # Where there is a shell it waits (2 MB); otherwise Python waits, told so by --wait.
        watchdog = next(command for command in waiting if "_watchdog_process.py" in command)
        assert watchdog.startswith("/bin/sh -c ") if shell == "/bin/sh" else watchdog.rstrip().endswith("--wait")
        owner.stdin.close()
        assert owner.wait(timeout=EXIT_BUDGET) == -signal.SIGKILL
        _gone_within(marker, DEATH_BUDGET)  # the child too: it left the owner's session, not its environment
    finally:
        _reap(owner)
        if owner.stdout is not None:
            owner.stdout.close()


def _owned_dir(root: Path, name: str, owner: str, mode: int = 0o700) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / OWNER_FILE).write_text(owner, encoding="utf-8")
    directory.chmod(mode)
    return directory


def test_the_start_up_sweep_removes_only_our_directories_whose_owner_is_gone(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    me = f"{os.getpid()} {process_start_time(os.getpid())}\n"
    stale = _owned_dir(tmp_path, "regogate-opa-stale", f"{finished.pid} 1\n")
    reused_pid = _owned_dir(tmp_path, "regogate-run-reused", f"{os.getpid()} 1\n")  # same pid, other start time
    alive = _owned_dir(tmp_path, "regogate-run-alive", me)
    foreign_mode = _owned_dir(tmp_path, "regogate-run-shared", f"{finished.pid} 1\n", mode=0o755)
    not_ours = _owned_dir(tmp_path, "other-stale", f"{finished.pid} 1\n")
    (tmp_path / "regogate-link").symlink_to(stale)
    no_owner = tmp_path / "regogate-run-nofile"
    no_owner.mkdir(mode=0o700)

    removed = sweep_stale_dirs(str(tmp_path))

    assert sorted(removed) == sorted([stale, reused_pid])
    assert not stale.exists() and not reused_pid.exists()
    for kept in (alive, foreign_mode, not_ours, no_owner, tmp_path / "regogate-link"):
        assert kept.is_symlink() or kept.exists()
