"""The bridge's figure for ``make bench``: added latency of ``regogate --upstream URL`` against plain HTTP.

Both paths reach the same server (bench/http_echo_server.py) with the same calls, alternating call
by call: ``direct`` is a lean keep-alive HTTP/1.1 client POSTing each ``tools/call``
(``bench._http_client``, as light per call as the stdio client); ``bridge`` is bench/_session.py on
regogate's stdio, regogate deciding with its embedded OPA and POSTing to the server on its own
HTTP/1.1 transport. For reference, the same calls also go, in the same rotation,
to bench/echo_server.py on stdio directly and through ``regogate -- SERVER``: what the stdio relay
adds on this machine at this moment is the floor under the bridge's figure (the same decision, the
same two pipe hops), so the bridge's own share is the difference of the two.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from bench._http_client import HttpSession
from bench._measure import Plan, percentile
from bench._session import BenchError, Session, bench_env, check_reply, cpu_seconds, descendants

SERVER = [sys.executable, "-m", "bench.http_echo_server"]
STDIO_SERVER = [sys.executable, "-m", "bench.echo_server"]
SERVER_START_TIMEOUT = 20.0
"""The stdlib server binds at once; the rest is slack for a loaded machine."""
TARGET_P50_US = 1000.0
PROTOCOL_VERSION = "2025-11-25"
INITIALIZE = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}


def handshake(session: Session) -> None:
    """``initialize`` and ``notifications/initialized`` on one path."""
    session.ask("initialize", INITIALIZE)
    session.notify("notifications/initialized")


def _lines(session: Session, count: int) -> list[bytes]:
    return [session.request_line("tools/call", {"name": "echo", "arguments": {"text": f"w{i}"}}) for i in range(count)]


def _timed_http(client: HttpSession, lines: list[bytes]) -> list[int]:
    samples = []
    for line in lines:
        started = time.perf_counter_ns()
        reply = client.post(line.rstrip(b"\n"))
        samples.append(time.perf_counter_ns() - started)
        check_reply(reply, json.loads(line)["id"])
    return samples


def _echo(session: Session, index: int) -> bytes:
    return session.request_line("tools/call", {"name": "echo", "arguments": {"text": f"w{index}"}})


def _interleaved(client: HttpSession, paths: dict[str, Session], count: int) -> dict[str, list[int]]:
    """``count`` calls on each path, one on each in turn, so every path sees the same machine load."""
    samples: dict[str, list[int]] = {"direct": [], **{name: [] for name in paths}}
    first = next(iter(paths.values()))
    for index in range(count):
        samples["direct"] += _timed_http(client, [_echo(first, index)])
        for name, session in paths.items():
            timed, replies = session.timed([_echo(session, index)])
            if b'"isError":false' not in replies[0]:
                raise BenchError(f"{name} answered a call with {replies[0][:200]!r}")
            samples[name] += timed
    return samples


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
    """One ``{<path>_p50, <path>_p99, bridge_cpu}`` (µs) per repetition; paths: direct, bridge, stdio_direct, stdio.

    Raises:
        BenchError: a path misbehaved.
    """
    results = []
    process, port = _start_server(stderr, env)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(plan.repeat):
            client = HttpSession(port)
            gated = [regogate, "-c", str(policy), "--log-level", "error", "--state", "memory"]
            paths: dict[str, Session] = {}
            try:
                paths["bridge"] = Session([*gated, "--upstream", url], env=env, stderr=stderr)
                paths["stdio_direct"] = Session(STDIO_SERVER, env=env, stderr=stderr)
                paths["stdio"] = Session([*gated, "--", *STDIO_SERVER], env=env, stderr=stderr)
                for session in paths.values():
                    handshake(session)
                client.post(paths["bridge"].request_line("initialize", INITIALIZE).rstrip(b"\n"))
                _interleaved(client, paths, plan.warmup)
                bridge = paths["bridge"]
                tree = [bridge.pid, *descendants(bridge.pid)]  # regogate and its embedded OPA
                cpu_before = sum(cpu_seconds(pid) for pid in tree)
                samples = _interleaved(client, paths, plan.calls)
                cpu_per_call = (sum(cpu_seconds(pid) for pid in tree) - cpu_before) / plan.calls * 1e6
            finally:
                client.close()
                statuses = {name: session.close() for name, session in paths.items()}
            if any(statuses.values()):
                raise BenchError(f"a measured process exited with a failure: {statuses}")
            figures = {f"{path}_p{q}": percentile(samples[path], q) / 1000 for path in samples for q in (50, 99)}
            results.append({**figures, "bridge_cpu": cpu_per_call})
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    return results


def _figure(result: dict[str, float], get: str | tuple[str, str] | Callable[[dict[str, float]], float]) -> float:
    if isinstance(get, str):
        return result[get]
    if isinstance(get, tuple):
        return result[get[0]] - result[get[1]]
    return get(result)


def render_bridge(results: list[dict[str, float]]) -> str:
    """The report's section for the bridge, medians over repetitions with (min … max)."""

    def cell(get: str | tuple[str, str] | Callable[[dict[str, float]], float]) -> str:
        values = sorted(_figure(r, get) for r in results)
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
            "The stdio rows are the reference, measured in the same rotation: `bench/echo_server.py` on stdio,",
            "directly and through `regogate -- SERVER`; what that relay adds is the floor under the bridge's figure.",
            "Rotating call by call keeps the server as idle between two direct calls as between two bridged ones",
            "(back to back, the direct path would meet a warmer server); it also lets regogate and OPA go cold",
            "before every call, so the relay's figures here are higher than the main section's back-to-back ones.",
            "",
            "| path | p50 | p99 | added p50 | added p99 |",
            "|---|---|---|---|---|",
            f"| direct HTTP | {cell('direct_p50')} | {cell('direct_p99')} | +0 | +0 |",
            f"| bridge | {cell('bridge_p50')} | {cell('bridge_p99')} | "
            f"+{cell(('bridge_p50', 'direct_p50'))} | +{cell(('bridge_p99', 'direct_p99'))} |",
            f"| direct stdio (reference) | {cell('stdio_direct_p50')} | {cell('stdio_direct_p99')} | +0 | +0 |",
            f"| stdio relay (reference) | {cell('stdio_p50')} | {cell('stdio_p99')} | "
            f"+{cell(('stdio_p50', 'stdio_direct_p50'))} | +{cell(('stdio_p99', 'stdio_direct_p99'))} |",
            "",
            f"The bridge's own share of its added p50 (over the stdio relay's): {cell(_own_share)} µs.",
            "",
            f"CPU per call of regogate and its embedded OPA together: {cell('bridge_cpu')} µs.",
            "",
            f"Target: added p50 ≤ {TARGET_P50_US:.0f} µs — met: {met}.",
            "",
        ]
    )


def _own_share(result: dict[str, float]) -> float:
    """What the bridge adds over direct HTTP, less what the stdio relay adds over direct stdio."""
    return (result["bridge_p50"] - result["direct_p50"]) - (result["stdio_p50"] - result["stdio_direct_p50"])


def bridge_section(plan: Plan, *, workdir: Path, regogate: str, policy: Path, root: Path) -> str:
    """Measure the bridge (stderr to ``workdir``) and render its section of the report."""
    env = bench_env(root)
    with open(workdir / "bridge-stderr.log", "ab") as stderr:
        return render_bridge(measure_bridge(plan, regogate=regogate, policy=policy, env=env, stderr=stderr))
