"""``python -m bench.gateway``: the HTTP gateway's figures (``regogate serve``), measured on their own.

- throughput: decided ``tools/call``s per second with ``--clients`` concurrent keep-alive HTTP clients,
  each in its own session (so each with its own bench/echo_server.py process behind the gateway);
- latency: one client's sequential calls, p50/p99, against ``direct``: the same answers from
  bench/http_echo_server.py, a plain Streamable HTTP server, so the difference is what the gateway adds;
- memory: regogate's resident memory per idle session, and one session's upstream process apart;
- the floor under the gateway: ``regogate run`` (the same relay and gate, over stdio) in the same run,
  its p50 and its calls/s with ``--clients`` calls in flight, and each path's CPU per decided call, so
  what the HTTP face adds reads apart from what the relay and the decision cost.

Clients are keep-alive HTTP/1.1 connections with requests written whole and answers read by hand,
all driven by one thread (``HttpSession``): a load generator far lighter than an SDK client or
http.client, so the figures are the gateway's, not the client's (the client's own CPU per call is
reported beside them). Run it alone: ``python -m bench.gateway``.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench._bridge import SERVER, SERVER_START_TIMEOUT
from bench._http_client import INITIALIZE_PARAMS, HttpSession, check_echo
from bench._measure import percentile
from bench._report import machine_facts
from bench._session import BenchError, Session, bench_env, cpu_seconds
from regogate.proxy.policy import find_opa

ROOT = Path(__file__).resolve().parent.parent
POLICY = Path(__file__).resolve().parent / "bench.yaml"
REGOGATE = str(Path(sys.executable).parent / "regogate")
ECHO = [sys.executable, "-m", "bench.echo_server"]
START_TIMEOUT = 60.0
"""regogate serve's start (policy conversion, embedded OPA) on a loaded machine."""
TARGET_CALLS_PER_SECOND = 1000.0
TARGET_ADDED_P50_US = 1000.0


def _read_until(process: subprocess.Popen[bytes], prefix: str, timeout: float) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line
    raise BenchError(f"no {prefix!r} line: {buffer.decode(errors='replace')[-500:]}")


@contextmanager
def gateway(
    env: Mapping[str, str], max_sessions: int, command: Sequence[str] = (REGOGATE,)
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``regogate serve`` (``command`` runs regogate) in front of bench/echo_server.py: its port and process."""
    argv = [*command, "serve", "-c", str(POLICY), "--listen", "127.0.0.1:0", "--state", "memory"]
    argv += ["--audit-log", "none", "--log-level", "error", "--max-sessions", str(max_sessions), "--", *ECHO]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(env)
    )
    try:
        line = _read_until(process, "regogate: serving MCP on ", START_TIMEOUT)
        yield int(line.rsplit(":", 1)[1].split("/")[0]), process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@contextmanager
def direct_server(env: Mapping[str, str]) -> Iterator[int]:
    process = subprocess.Popen(SERVER, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(env))
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], SERVER_START_TIMEOUT)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            raise BenchError("bench/http_echo_server.py did not start")
        yield int(line.split()[1])
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _sequential(port: int, warmup: int, calls: int) -> list[int]:
    session = HttpSession(port)
    try:
        session.start()
        for i in range(warmup):
            session.call(f"w{i}")
        return [session.call(f"c{i}") for i in range(calls)]
    finally:
        session.close()


def _stdio_relay(env: Mapping[str, str], *, sequential: int, in_flight: int, calls: int) -> dict[str, float]:
    """``regogate run`` in front of the same echo server, over stdio: p50 of sequential calls, calls/s with
    ``in_flight`` outstanding, and regogate's CPU per call in that run."""
    argv = [REGOGATE, "-c", str(POLICY), "--state", "memory", "--audit-log", "none", "--log-level", "error"]
    with open(os.devnull, "wb") as stderr:
        session = Session([*argv, "--", *ECHO], env=env, stderr=stderr)
        try:
            session.ask("initialize", INITIALIZE_PARAMS)
            session.notify("notifications/initialized")

            def lines(count: int) -> list[bytes]:
                return [
                    session.request_line("tools/call", {"name": "echo", "arguments": {"text": f"s{i}"}})
                    for i in range(count)
                ]

            session.timed(lines(200))
            samples, replies = session.timed(lines(sequential))
            batch = lines(calls)
            cpu = cpu_seconds(session.pid)
            elapsed, replies = session.pipelined(batch, in_flight)
            cpu = cpu_seconds(session.pid) - cpu
        finally:
            session.close()
    if any(b'"isError":false' not in reply for reply in replies):
        raise BenchError("a call through regogate run was not answered with its echo")
    return {"p50": percentile(samples, 50) / 1000, "rate": calls / elapsed, "cpu_ms": cpu / calls * 1000}


def _throughput(port: int, clients: int, calls: int) -> float:
    """Decided calls/s with ``clients`` sessions, each with one call in flight, all driven by one thread."""
    sessions = [HttpSession(port) for _ in range(clients)]
    for session in sessions:
        session.start()
        session.call("warm")
    left = dict.fromkeys(sessions, calls)
    with selectors.DefaultSelector() as selector:
        for session in sessions:
            selector.register(session.sock, selectors.EVENT_READ, session)
        started = time.perf_counter()
        for session in sessions:
            session.send(session.call_message("t"))
        while selector.get_map():
            for key, _ in selector.select(60):
                session = key.data
                chunk = session.sock.recv(65536)
                if not chunk:
                    raise BenchError("the gateway closed a connection")
                body = session.answer(chunk)
                if body is None:
                    continue
                check_echo(body)
                left[session] -= 1
                if left[session]:
                    session.send(session.call_message("t"))
                else:
                    selector.unregister(session.sock)
        elapsed = time.perf_counter() - started
    for session in sessions:
        session.close()
    return clients * calls / elapsed


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text(encoding="utf-8").split()]
    return found


def _idle_memory(port: int, process: subprocess.Popen[bytes], sessions: int) -> tuple[float, float]:
    """(regogate's KiB per idle session, one upstream process's KiB)."""
    before_children = set(_children(process.pid))
    before = _rss_kib(process.pid)
    opened = [HttpSession(port) for _ in range(sessions)]
    for session in opened:
        session.start()
        session.call("idle")
    time.sleep(1.0)  # let the allocator settle before reading RSS
    after = _rss_kib(process.pid)
    upstreams = [pid for pid in _children(process.pid) if pid not in before_children]
    upstream_kib = sorted(_rss_kib(pid) for pid in upstreams)[len(upstreams) // 2] if upstreams else 0
    for session in opened:
        session.close()
    return (after - before) / sessions, float(upstream_kib)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(*, clients: int, calls: int, sequential: int, idle: int) -> dict[str, float]:
    env = bench_env(ROOT)
    with direct_server(env) as port:
        direct = _sequential(port, 200, sequential)
    stdio = _stdio_relay(env, sequential=sequential, in_flight=clients, calls=clients * calls)
    with gateway(env, max_sessions=clients + idle + 2) as (port, process):
        through = _sequential(port, 200, sequential)
        cpu, client_cpu = cpu_seconds(process.pid), _own_cpu()
        rate = _throughput(port, clients, calls)
        cpu, client_cpu = cpu_seconds(process.pid) - cpu, _own_cpu() - client_cpu
        per_session, upstream = _idle_memory(port, process, idle)
    return {
        "stdio_p50": stdio["p50"],
        "stdio_calls_per_second": stdio["rate"],
        "stdio_cpu_ms": stdio["cpu_ms"],
        "gateway_cpu_ms": cpu / (clients * (calls + 1)) * 1000,
        "client_cpu_ms": client_cpu / (clients * (calls + 1)) * 1000,
        "direct_p50": percentile(direct, 50) / 1000,
        "direct_p99": percentile(direct, 99) / 1000,
        "gateway_p50": percentile(through, 50) / 1000,
        "gateway_p99": percentile(through, 99) / 1000,
        "calls_per_second": rate,
        "session_kib": per_session,
        "upstream_kib": upstream,
    }


def _values(results: Sequence[Mapping[str, float]], get: str | Callable[[Mapping[str, float]], float]) -> list[float]:
    return sorted(r[get] if isinstance(get, str) else get(r) for r in results)


def _cell(results: Sequence[Mapping[str, float]], get: str | Callable[[Mapping[str, float]], float], form: str) -> str:
    """The median over the repetitions, with (min … max) when they differ."""
    values = _values(results, get)
    middle = format(values[len(values) // 2], form)
    if values[0] == values[-1]:
        return middle
    return f"{middle} ({format(values[0], form)} … {format(values[-1], form)})"


def _median(results: Sequence[Mapping[str, float]], get: str | Callable[[Mapping[str, float]], float]) -> float:
    values = _values(results, get)
    return values[len(values) // 2]


def _added(r: Mapping[str, float]) -> float:
    return r["gateway_p50"] - r["direct_p50"]


def _stdio_added(r: Mapping[str, float]) -> float:
    return r["stdio_p50"] - r["direct_p50"]


def render(results: Sequence[Mapping[str, float]], *, clients: int, calls: int, idle: int) -> str:
    """The section: each figure the median over the repetitions in ``results``, with (min … max)."""
    rate_met = "yes" if _median(results, "calls_per_second") >= TARGET_CALLS_PER_SECOND else "**no**"
    added_met = "yes" if _median(results, _added) <= TARGET_ADDED_P50_US else "**no**"
    repetitions = f"{len(results)} repetition{'s' if len(results) != 1 else ''}"
    return "\n".join(
        [
            "",
            "## HTTP gateway (`regogate serve`)",
            "",
            f"Medians over {repetitions}, with (min … max). Throughput: {_cell(results, 'calls_per_second', '.0f')} "
            f"decided calls/s with {clients} concurrent keep-alive HTTP clients ({calls} calls each, each client "
            f"in its own session with its own bench/echo_server.py); target ≥ {TARGET_CALLS_PER_SECOND:.0f}/s — "
            f"met: {rate_met}.",
            "",
            "| path (one client, sequential calls, µs) | p50 | p99 |",
            "|---|---|---|",
            f"| direct: bench/http_echo_server.py over HTTP | {_cell(results, 'direct_p50', '.0f')} | "
            f"{_cell(results, 'direct_p99', '.0f')} |",
            f"| gateway: regogate serve -- bench/echo_server.py | {_cell(results, 'gateway_p50', '.0f')} | "
            f"{_cell(results, 'gateway_p99', '.0f')} |",
            "",
            f"Added p50: +{_cell(results, _added, '.0f')} µs; target ≤ {TARGET_ADDED_P50_US:.0f} µs — "
            f"met: {added_met}.",
            "",
            "The floor in the same run, `regogate run -- bench/echo_server.py` over stdio (the same relay and "
            f"gate, one session): p50 {_cell(results, 'stdio_p50', '.0f')} µs "
            f"(+{_cell(results, _stdio_added, '.0f')} µs against direct HTTP), "
            f"{_cell(results, 'stdio_calls_per_second', '.0f')} calls/s with {clients} in flight. "
            "regogate's CPU per decided call in the throughput runs: gateway "
            f"{_cell(results, 'gateway_cpu_ms', '.2f')} ms, stdio {_cell(results, 'stdio_cpu_ms', '.2f')} ms "
            f"(OPA apart); the {clients} clients together (this process) {_cell(results, 'client_cpu_ms', '.2f')} ms.",
            "",
            f"Memory per idle session ({idle} sessions opened): regogate +{_cell(results, 'session_kib', '.0f')} KiB "
            f"each; each session's upstream process (bench/echo_server.py) "
            f"{_median(results, 'upstream_kib') / 1024:.1f} MiB.",
            "",
        ]
    )


def gateway_section(*, repeat: int = 3, smoke: bool = False) -> str:
    """The section ``make bench`` appends: ``repeat`` measurements (one, of a handful of calls, with ``smoke``)."""
    sizes = {"clients": 2, "calls": 5, "idle": 2} if smoke else {"clients": 8, "calls": 500, "idle": 20}
    results = [measure(sequential=5 if smoke else 1000, **sizes) for _ in range(1 if smoke else repeat)]
    return render(results, **sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=500, help="calls per client in the throughput run")
    parser.add_argument("--sequential", type=int, default=1000, help="calls in each latency run")
    parser.add_argument("--idle", type=int, default=20, help="idle sessions opened for the memory figure")
    parser.add_argument("--repeat", type=int, default=1, help="measurements, reported as medians (min … max)")
    args = parser.parse_args(argv)
    facts = machine_facts(find_opa(None), ROOT)
    sizes = {"clients": args.clients, "calls": args.calls, "idle": args.idle}
    results = [measure(sequential=args.sequential, **sizes) for _ in range(args.repeat)]
    command = "python -m bench.gateway " + " ".join(argv if argv is not None else sys.argv[1:])
    header = f"\n`{command.strip()}` on {facts.get('cpu', 'unknown CPU')}, load {os.getloadavg()[0]:.1f} at the end.\n"
    sys.stdout.write(render(results, **sizes) + header)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
