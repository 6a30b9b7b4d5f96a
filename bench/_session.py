"""A lean, synchronous JSON-lines MCP client for the benchmark: one child process, raw pipes, no SDK.

Requests are pre-encoded before timing; a round trip is one ``os.write`` and one line read, so the
client's own cost is the same small constant on every path it measures.
"""

from __future__ import annotations

import compileall
import json
import os
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from regogate.proxy.policy import find_opa

#: One reply never takes this long, even on a loaded machine; a hang fails the run instead of blocking it.
REPLY_TIMEOUT = 30.0
#: How long a child may take to exit after stdin closes before it is killed.
EXIT_TIMEOUT = 5.0
READ_CHUNK = 1 << 16


#: The packages of a source tree the measured processes import (compiled before they start).
TREE_PACKAGES = ("core", "proxy", "converters", "bench")


def bench_env(*trees: Path) -> dict[str, str]:
    """The environment of every measured process, with ``trees[0]`` on ``PYTHONPATH``; bytecode is cached.

    An installed regogate starts from the bytecode pip compiled at install time. A source tree run
    under ``PYTHONDONTWRITEBYTECODE`` (as in this project's sandbox) compiles every module at every
    start instead, which start-up figures would charge to regogate; so each tree's packages are
    compiled here once and the variable is dropped.
    """
    for tree in trees:
        for package in TREE_PACKAGES:
            if (tree / package).is_dir():
                compileall.compile_dir(tree / package, quiet=2)
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "REGOGATE_OPA": find_opa(None), "PYTHONPATH": str(trees[0])}


class BenchError(RuntimeError):
    """The path under test misbehaved (no answer, a wrong answer, an early exit)."""


class Session:
    """One MCP server process (direct, or regogate in front of one) spoken to over its stdio."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], stderr: IO[bytes]) -> None:
        self.started_ns = time.perf_counter_ns()
        self.process = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=dict(env), bufsize=0
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._wfd = self.process.stdin.fileno()
        self._rfd = self.process.stdout.fileno()
        self._buffer = bytearray()
        self._next_id = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request_line(self, method: str, params: Mapping[str, object] | None = None) -> bytes:
        """A request with a fresh id, encoded as one line."""
        message: dict[str, object] = {"jsonrpc": "2.0", "id": self.next_id(), "method": method}
        if params is not None:
            message["params"] = dict(params)
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"

    def send(self, line: bytes) -> None:
        view = memoryview(line)
        while view:
            view = view[os.write(self._wfd, view) :]

    def receive(self) -> bytes:
        """The next line from the server.

        Raises:
            BenchError: nothing within ``REPLY_TIMEOUT``, or the server closed its stdout.
        """
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                return line
            ready, _, _ = select.select([self._rfd], [], [], REPLY_TIMEOUT)
            if not ready:
                raise BenchError(f"no reply within {REPLY_TIMEOUT} s (pid {self.pid})")
            chunk = os.read(self._rfd, READ_CHUNK)
            if not chunk:
                raise BenchError(f"the server closed its stdout (pid {self.pid}, status {self.process.poll()})")
            self._buffer += chunk

    def ask(self, method: str, params: Mapping[str, object] | None = None) -> dict[str, object]:
        """Send one request and return its parsed reply.

        Raises:
            BenchError: the reply is not a JSON object with the request's id.
        """
        line = self.request_line(method, params)
        self.send(line)
        return check_reply(self.receive(), json.loads(line)["id"])

    def notify(self, method: str) -> None:
        self.send(json.dumps({"jsonrpc": "2.0", "method": method}, separators=(",", ":")).encode() + b"\n")

    def timed(self, lines: Sequence[bytes]) -> tuple[list[int], list[bytes]]:
        """Send each line and wait for its reply, one at a time; round trips in ns, and the replies."""
        samples: list[int] = []
        replies: list[bytes] = []
        clock, send, receive = time.perf_counter_ns, self.send, self.receive
        for line in lines:
            started = clock()
            send(line)
            reply = receive()
            samples.append(clock() - started)
            replies.append(reply)
        return samples, replies

    def pipelined(self, lines: Sequence[bytes], in_flight: int) -> tuple[float, list[bytes]]:
        """Keep ``in_flight`` requests outstanding until every line is answered; seconds taken, replies."""
        replies: list[bytes] = []
        started = time.perf_counter()
        sent = 0
        for line in lines[:in_flight]:
            self.send(line)
            sent += 1
        while len(replies) < len(lines):
            replies.append(self.receive())
            if sent < len(lines):
                self.send(lines[sent])
                sent += 1
        return time.perf_counter() - started, replies

    def close(self) -> int:
        """Close stdin and wait for the exit (kill after ``EXIT_TIMEOUT``); the exit status."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            status = self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.process.stdout.close()
        return status


def check_reply(line: bytes, request_id: object) -> dict[str, object]:
    """Parse a reply and check it answers ``request_id``.

    Raises:
        BenchError: not a JSON object, or another id.
    """
    reply = json.loads(line)
    if not isinstance(reply, dict) or reply.get("id") != request_id:
        raise BenchError(f"expected the reply to {request_id!r}, got {line[:200]!r}")
    return reply


def rss_bytes(pid: int) -> int:
    """Resident set size of a live process (``VmRSS``)."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for entry in status:
            if entry.startswith("VmRSS:"):
                return int(entry.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size of a live process so far (``VmHWM``)."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for entry in status:
            if entry.startswith("VmHWM:"):
                return int(entry.split()[1]) * 1024
    raise BenchError(f"no VmHWM for pid {pid}")


#: Kernel clock ticks per second, the unit of ``utime`` and ``stime`` in ``/proc/<pid>/stat``.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process (all its threads) has used so far."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process, children first."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children: list[int] = []
        for parent in frontier:
            try:
                children += child_pids(parent)
            except OSError:
                continue  # exited meanwhile
        found += children
        frontier = children
    return found


def child_pids(pid: int) -> list[int]:
    """Direct children of a process."""
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children", encoding="utf-8") as children:
            found += [int(p) for p in children.read().split()]
    return found


def command_line(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as raw:
        return [part.decode(errors="replace") for part in raw.read().split(b"\0") if part]
