"""The bridge's figure for ``make bench``: added latency of ``regogate --upstream URL`` against plain HTTP.

Both paths reach the same server (bench/http_echo_server.py) with the same calls, alternating call
by call: ``direct`` is a lean keep-alive HTTP/1.1 client POSTing each ``tools/call``; ``bridge`` is
bench/_session.py on regogate's stdio, regogate deciding with its embedded OPA and POSTing to the
server on its own HTTP/1.1 transport.
"""

from __future__ import annotations

import http.client
import json
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from bench._measure import Plan, percentile
from bench._session import BenchError, Session, bench_env, check_reply, cpu_seconds, descendants

SERVER = [sys.executable, "-m", "bench.http_echo_server"]
SERVER_START_TIMEOUT = 20.0
"""The stdlib server binds at once; the rest is slack for a loaded machine."""
TARGET_P50_US = 1000.0
PROTOCOL_VERSION = "2025-11-25"


class _HttpClient:
    """Keep-alive POSTs of pre-encoded JSON-RPC lines; the same work per call as the stdio client."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}

    def call(self, body: bytes) -> bytes:
        self._connection.request("POST", "/mcp", body, self._headers)
        response = self._connection.getresponse()
        data = response.read()
        if "mcp-session-id" in {k.lower() for k in response.headers}:
            self._headers["mcp-session-id"] = response.headers["mcp-session-id"]
        return data

    def close(self) -> None:
        self._connection.close()


def _lines(session: Session, count: int) -> list[bytes]:
    return [session.request_line("tools/call", {"name": "echo", "arguments": {"text": f"w{i}"}}) for i in range(count)]


def _timed_http(client: _HttpClient, lines: list[bytes]) -> list[int]:
    samples = []
    for line in lines:
        started = time.perf_counter_ns()
        reply = client.call(line.rstrip(b"\n"))
        samples.append(time.perf_counter_ns() - started)
        check_reply(reply, json.loads(line)["id"])
    return samples


def _interleaved(client: _HttpClient, bridge: Session, count: int) -> tuple[list[int], list[int]]:
    """``count`` calls on each path, alternating call by call so both see the same machine load."""
    direct: list[int] = []
    through: list[int] = []
    for line_direct, line_bridge in zip(_lines(bridge, count), _lines(bridge, count), strict=True):
        direct += _timed_http(client, [line_direct])
        samples, replies = bridge.timed([line_bridge])
        if b'"isError":false' not in replies[0]:
            raise BenchError(f"the bridge answered a call with {replies[0][:200]!r}")
        through += samples
    return direct, through


def _start_server(stderr: IO[bytes], env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(SERVER, stdout=subprocess.PIPE, stderr=stderr, env=dict(env))
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], SERVER_START_TIMEOUT)
    line = process.stdout.readline().decode() if ready else ""
    if not line.startswith("PORT "):
        process.kill()
        process.wait()
        raise BenchError("bench/http_echo_server.py did not start")
    return process, int(line.split()[1])


def measure_bridge(
    plan: Plan, *, regogate: str, policy: Path, env: Mapping[str, str], stderr: IO[bytes]
) -> list[dict[str, float]]:
    """One ``{direct_p50, direct_p99, bridge_p50, bridge_p99, bridge_cpu}`` (µs) per repetition.

    Raises:
        BenchError: a path misbehaved.
    """
    results = []
    process, port = _start_server(stderr, env)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(plan.repeat):
            client = _HttpClient(port)
            bridge = Session(
                [regogate, "-c", str(policy), "--log-level", "error", "--state", "memory", "--upstream", url],
                env=env,
                stderr=stderr,
            )
            try:
                init = {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"},
                }
                bridge.ask("initialize", init)
                bridge.notify("notifications/initialized")
                client.call(bridge.request_line("initialize", init).rstrip(b"\n"))
                _interleaved(client, bridge, plan.warmup)
                tree = [bridge.pid, *descendants(bridge.pid)]  # regogate and its embedded OPA
                cpu_before = sum(cpu_seconds(pid) for pid in tree)
                direct, through = _interleaved(client, bridge, plan.calls)
                cpu_per_call = (sum(cpu_seconds(pid) for pid in tree) - cpu_before) / plan.calls * 1e6
            finally:
                client.close()
                status = bridge.close()
            if status != 0:
                raise BenchError(f"the bridge exited with status {status}")
            results.append(
                {
                    "direct_p50": percentile(direct, 50) / 1000,
                    "direct_p99": percentile(direct, 99) / 1000,
                    "bridge_p50": percentile(through, 50) / 1000,
                    "bridge_p99": percentile(through, 99) / 1000,
                    "bridge_cpu": cpu_per_call,
                }
            )
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    return results


def render_bridge(results: list[dict[str, float]]) -> str:
    """The report's section for the bridge, medians over repetitions with (min … max)."""

    def cell(get: str | tuple[str, str]) -> str:
        values = sorted(r[get] if isinstance(get, str) else r[get[0]] - r[get[1]] for r in results)
        mid = values[len(values) // 2]
        return f"{mid:.0f}" if values[0] == values[-1] else f"{mid:.0f} ({values[0]:.0f} … {values[-1]:.0f})"

    added = sorted(r["bridge_p50"] - r["direct_p50"] for r in results)[len(results) // 2]
    met = "yes" if added <= TARGET_P50_US else "**no**"
    return "\n".join(
        [
            "",
            "## Bridge to a Streamable HTTP server (µs)",
            "",
            "The same server (`bench/http_echo_server.py`, JSON answers, HTTP/1.1 keep-alive), the same calls,",
            "alternating call by call: `direct` POSTs each `tools/call` itself; `bridge` sends it on regogate's",
            "stdio (`regogate --upstream URL`, embedded OPA), which decides it and POSTs it on its own HTTP/1.1",
            "transport (`proxy/relay/_http_transport.py`: one checked write per request, httptools reads answers).",
            "",
            "| path | p50 | p99 | added p50 | added p99 |",
            "|---|---|---|---|---|",
            f"| direct HTTP | {cell('direct_p50')} | {cell('direct_p99')} | +0 | +0 |",
            f"| bridge | {cell('bridge_p50')} | {cell('bridge_p99')} | "
            f"+{cell(('bridge_p50', 'direct_p50'))} | +{cell(('bridge_p99', 'direct_p99'))} |",
            "",
            f"CPU per call of regogate and its embedded OPA together: {cell('bridge_cpu')} µs.",
            "",
            f"Target: added p50 ≤ {TARGET_P50_US:.0f} µs — met: {met}.",
            "",
        ]
    )


def bridge_section(plan: Plan, *, workdir: Path, regogate: str, policy: Path, root: Path) -> str:
    """Measure the bridge (stderr to ``workdir``) and render its section of the report."""
    env = bench_env(root)
    with open(workdir / "bridge-stderr.log", "ab") as stderr:
        return render_bridge(measure_bridge(plan, regogate=regogate, policy=policy, env=env, stderr=stderr))
