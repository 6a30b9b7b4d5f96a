"""What one repetition measures on one path: every figure of docs/benchmarks.md, from one live session."""

from __future__ import annotations

import http.client
import json
import math
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio

from bench._session import (
    BenchError,
    Session,
    check_reply,
    child_pids,
    command_line,
    cpu_seconds,
    descendants,
    peak_rss_bytes,
    rss_bytes,
)
from bench.echo_server import tool_entry
from regogate.proxy.policy import CallInput, OpaClient

PROTOCOL_VERSION = "2025-11-25"
DECISION_PATH = "regogate/gate/decision"
SERVER_ID = "bench"
#: The throughput mix: mostly allowed calls, some rate-limited and some denied ones (all decided).
CALL_MIX = (("echo", 0.8), ("limited", 0.1), ("denied", 0.1))
#: What names the upstream among a session's processes (the rest of the tree is the proxy).
UPSTREAM_MARK = "bench.echo_server"
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


@dataclass(frozen=True)
class Plan:
    """How many of each message one repetition sends."""

    warmup: int = 200
    calls: int = 2000
    growth_calls: int = 10_000
    growth_checkpoint: int = 1000
    growth_window: int = 500
    side_calls: int = 1000
    throughput_calls: int = 2000
    in_flight: tuple[int, ...] = (1, 8, 32)
    list_sizes: tuple[int, ...] = (10, 100, 1000)
    list_warmup: int = 10
    list_calls: int = 100
    metrics_calls: int = 1000
    repeat: int = 3
    seed: int = 20_260_601

    @classmethod
    def smoke(cls) -> Plan:
        return cls(
            warmup=3,
            calls=20,
            growth_calls=40,
            growth_checkpoint=20,
            growth_window=10,
            side_calls=10,
            throughput_calls=40,
            list_warmup=1,
            list_calls=3,
            metrics_calls=10,
            repeat=1,
        )


@dataclass
class PathSpec:
    """One way to reach the echo server: its argv, and how to find OPA behind it."""

    name: str
    argv: list[str]
    gated: bool
    opa_url: Callable[[Session], str] | None = None
    opa_pid: Callable[[Session], int] | None = None
    full: bool = True
    """False: only start-up and the rate-limit figure (the SQLite variant)."""
    figures: dict[str, float] = field(default_factory=dict)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _us(samples_ns: Sequence[int], q: float) -> float:
    return percentile(samples_ns, q) / 1000


class Driver:
    """Seeded request factory for one session."""

    def __init__(self, session: Session, seed: int) -> None:
        self.session = session
        self.rng = random.Random(seed)

    def text(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(1, 8)))

    def call(self, tool: str) -> bytes:
        return self.session.request_line("tools/call", {"name": tool, "arguments": {"text": self.text()}})

    def mixed_call(self) -> bytes:
        pick, total = self.rng.random(), 0.0
        for tool, share in CALL_MIX:
            total += share
            if pick < total:
                return self.call(tool)
        return self.call(CALL_MIX[0][0])


def _check_calls(lines: Sequence[bytes], replies: Sequence[bytes], *, refused: bool | None) -> None:
    """Each reply answers its request; ``refused`` says whether it must (True) or must not be a denial."""
    for line, raw in zip(lines, replies, strict=True):
        reply = check_reply(raw, json.loads(line)["id"])
        result = reply.get("result")
        if not isinstance(result, dict):
            raise BenchError(f"not a tool result: {raw[:200]!r}")
        if refused is not None and bool(result.get("isError")) != refused:
            raise BenchError(f"expected {'a denial' if refused else 'an allowed call'}, got {raw[:200]!r}")


def _alternate(samples: Sequence[int]) -> tuple[list[int], list[int]]:
    """Samples of two interleaved kinds of request: even positions, odd positions."""
    return list(samples[0::2]), list(samples[1::2])


def start(spec: PathSpec, session: Session) -> None:
    """Initialize, and time start-up: to the ``initialize`` answer, and to the first decided call."""
    session.ask(
        "initialize",
        {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "regogate-bench", "version": "1"},
        },
    )
    spec.figures["ready_initialize_ms"] = (time.perf_counter_ns() - session.started_ns) / 1e6
    session.notify("notifications/initialized")
    reply = session.ask("tools/call", {"name": "echo", "arguments": {"text": "ready"}})
    if not isinstance(reply.get("result"), dict):
        raise BenchError(f"the first call failed: {reply}")
    spec.figures["ready_call_ms"] = (time.perf_counter_ns() - session.started_ns) / 1e6


def tree(spec: PathSpec, session: Session) -> dict[str, list[int]]:
    """The session's processes by role: ``proxy`` (regogate or a peer, with helpers), ``opa``, ``upstream``.

    Direct has only the upstream. An external OPA is not in the session's tree but is counted as its OPA.
    """
    if not spec.gated:
        return {"proxy": [], "opa": [], "upstream": [session.pid]}
    opa = [spec.opa_pid(session)] if spec.opa_pid is not None else []
    proxy, upstream = [session.pid], list[int]()
    for pid in descendants(session.pid):
        if pid in opa:
            continue
        (upstream if any(UPSTREAM_MARK in part for part in command_line(pid)) else proxy).append(pid)
    if not upstream:
        raise BenchError(f"no upstream ({UPSTREAM_MARK}) under pid {session.pid}")
    return {"proxy": proxy, "opa": opa, "upstream": upstream}


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    return {role: sum(cpu_seconds(pid) for pid in members) for role, members in pids.items()}


def allowed_stream(spec: PathSpec, session: Session, driver: Driver, plan: Plan) -> None:
    """Sequential allowed calls: latency after warm-up; RSS and latency at the checkpoint and the end;
    CPU per call of each process of the tree over the whole stream; the proxy + OPA memory at the end."""
    checkpoint, total, window = plan.growth_checkpoint, plan.growth_calls, plan.growth_window
    lines = [driver.call("echo") for _ in range(total)]
    pids = tree(spec, session)
    cpu_before = _cpu(pids)
    first, replies_a = session.timed(lines[:checkpoint])
    rss_checkpoint = rss_bytes(session.pid)
    rest, replies_b = session.timed(lines[checkpoint:])
    rss_end = rss_bytes(session.pid)
    cpu_after = _cpu(pids)
    for role in pids:
        spec.figures[f"cpu_{role}_us"] = (cpu_after[role] - cpu_before[role]) / total * 1e6
    if spec.gated:
        gate = pids["proxy"] + pids["opa"]
        spec.figures["tree_rss_mb"] = sum(rss_bytes(pid) for pid in gate) / 2**20
        spec.figures["tree_peak_rss_mb"] = sum(peak_rss_bytes(pid) for pid in gate) / 2**20
    samples = first + rest
    _check_calls(lines, replies_a + replies_b, refused=False)
    measured = samples[plan.warmup : plan.warmup + plan.calls]
    for q in (50, 90, 99):
        spec.figures[f"call_p{q}_us"] = _us(measured, q)
    spec.figures["growth_lat_checkpoint_us"] = _us(samples[checkpoint - window : checkpoint], 50)
    spec.figures["growth_lat_end_us"] = _us(samples[total - window : total], 50)
    spec.figures["rss_checkpoint_mb"] = rss_checkpoint / 2**20
    spec.figures["rss_end_mb"] = rss_end / 2**20


def denied_calls(spec: PathSpec, session: Session, driver: Driver, plan: Plan) -> None:
    lines = [driver.call("denied") for _ in range(plan.warmup + plan.side_calls)]
    samples, replies = session.timed(lines)
    _check_calls(lines, replies, refused=spec.gated)
    measured = samples[plan.warmup :]
    spec.figures["denied_p50_us"] = _us(measured, 50)
    spec.figures["denied_p99_us"] = _us(measured, 99)


def limited_calls(spec: PathSpec, session: Session, driver: Driver, plan: Plan) -> None:
    """Unlimited and rate-limited calls interleaved, so drift hits both alike."""
    lines = [driver.call(tool) for _ in range(plan.warmup + plan.side_calls) for tool in ("echo", "limited")]
    samples, replies = session.timed(lines)
    _check_calls(lines, replies, refused=False)
    plain, limited = _alternate(samples[2 * plan.warmup :])
    spec.figures["unlimited_p50_us"] = _us(plain, 50)
    spec.figures["limited_p50_us"] = _us(limited, 50)


def relayed(spec: PathSpec, session: Session, plan: Plan) -> None:
    """``ping`` and ``resources/read``, interleaved: messages the proxy only relays."""
    lines: list[bytes] = []
    for _ in range(plan.warmup + plan.side_calls):
        lines.append(session.request_line("ping"))
        lines.append(session.request_line("resources/read", {"uri": "bench://resource"}))
    samples, replies = session.timed(lines)
    for line, raw in zip(lines, replies, strict=True):
        if not isinstance(check_reply(raw, json.loads(line)["id"]).get("result"), dict):
            raise BenchError(f"a relayed request failed: {raw[:200]!r}")
    ping, read = _alternate(samples[2 * plan.warmup :])
    spec.figures["ping_p50_us"] = _us(ping, 50)
    spec.figures["ping_p99_us"] = _us(ping, 99)
    spec.figures["read_p50_us"] = _us(read, 50)
    spec.figures["read_p99_us"] = _us(read, 99)


def throughput(spec: PathSpec, session: Session, driver: Driver, plan: Plan) -> None:
    for in_flight in plan.in_flight:
        lines = [driver.mixed_call() for _ in range(plan.throughput_calls)]
        elapsed, replies = session.pipelined(lines, in_flight)
        expected = {json.loads(line)["id"] for line in lines}
        answered = {json.loads(raw)["id"] for raw in replies}
        if answered != expected:
            raise BenchError(f"{len(expected - answered)} pipelined calls went unanswered")
        spec.figures[f"throughput_{in_flight}"] = len(lines) / elapsed


def tool_lists(spec: PathSpec, session: Session, plan: Plan) -> None:
    for size in plan.list_sizes:
        session.ask("bench/set_tools", {"count": size})
        lines = [session.request_line("tools/list") for _ in range(plan.list_warmup + plan.list_calls)]
        samples, replies = session.timed(lines)
        for line, raw in zip(lines, replies, strict=True):
            result = check_reply(raw, json.loads(line)["id"]).get("result")
            tools = result.get("tools") if isinstance(result, dict) else None
            if not isinstance(tools, list):
                raise BenchError(f"tools/list failed: {raw[:200]!r}")
            names = {t["name"] for t in tools}
            if ("hidden-tool" in names) == spec.gated or len(tools) != size - spec.gated:
                raise BenchError(f"tools/list of {size} came back with {len(tools)} tools")
        spec.figures[f"list_{size}_p50_us"] = _us(samples[plan.list_warmup :], 50)


def opa_figures(spec: PathSpec, session: Session, plan: Plan) -> None:
    """OPA's RSS, its own evaluation time (``metrics=true``), and the proxy client's round trip."""
    if spec.opa_url is None or spec.opa_pid is None:
        return
    spec.figures["opa_rss_mb"] = rss_bytes(spec.opa_pid(session)) / 2**20
    url = spec.opa_url(session)
    document = CallInput(
        server_id=SERVER_ID,
        tool_name="echo",
        arguments={"text": "alpha bravo"},
        request_id=1,
        now=time.time(),
        client={"name": "regogate-bench", "version": "1"},
        protocol_version=PROTOCOL_VERSION,
        input_schema=tool_entry("echo")["inputSchema"],  # type: ignore[arg-type]
        annotations=tool_entry("echo")["annotations"],  # type: ignore[arg-type]
    ).to_document()
    evals, handlers = _server_metrics(url, document, plan.warmup + plan.metrics_calls)
    spec.figures["opa_eval_p50_us"] = percentile(evals[plan.warmup :], 50) / 1000
    spec.figures["opa_handler_p50_us"] = percentile(handlers[plan.warmup :], 50) / 1000
    rtts = anyio.run(_client_round_trips, url, document, plan.warmup + plan.metrics_calls)
    spec.figures["opa_client_rtt_p50_us"] = _us(rtts[plan.warmup :], 50)


async def _client_round_trips(url: str, document: dict[str, object], count: int) -> list[int]:
    """Round trips of regogate's own OPA client, as the gateway makes them."""
    samples: list[int] = []
    async with OpaClient(url) as client:
        for _ in range(count):
            started = time.perf_counter_ns()
            await client.evaluate(DECISION_PATH, document)
            samples.append(time.perf_counter_ns() - started)
    return samples


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("opa")
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self._path)
        self.sock = sock


def _server_metrics(url: str, document: dict[str, object], count: int) -> tuple[list[int], list[int]]:
    """OPA's ``timer_rego_query_eval_ns`` and ``timer_server_handler_ns`` for ``count`` decisions."""
    if url.startswith("unix://"):
        connection: http.client.HTTPConnection = _UnixConnection(url.removeprefix("unix://"))
    else:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port))
    body = json.dumps({"input": document}).encode()
    evals: list[int] = []
    handlers: list[int] = []
    try:
        for _ in range(count):
            connection.request(
                "POST",
                f"/v1/data/{DECISION_PATH}?strict-builtin-errors=true&metrics=true",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            answer = json.loads(connection.getresponse().read())
            metrics = answer["metrics"]
            evals.append(int(metrics["timer_rego_query_eval_ns"]))
            handlers.append(int(metrics["timer_server_handler_ns"]))
    finally:
        connection.close()
    return evals, handlers


def embedded_opa_pid(session: Session) -> int:
    """The ``opa run`` child of a regogate session."""
    for pid in child_pids(session.pid):
        argv = command_line(pid)
        if len(argv) > 2 and argv[1] == "run" and "--server" in argv:
            return pid
    raise BenchError(f"regogate (pid {session.pid}) has no OPA child")


def embedded_opa_url(session: Session) -> str:
    argv = command_line(embedded_opa_pid(session))
    return argv[argv.index("--addr") + 1]


def measure(spec: PathSpec, session: Session, plan: Plan, seed: int) -> None:
    """Every figure for one path, in one session."""
    driver = Driver(session, seed)
    start(spec, session)
    if not spec.full:
        limited_calls(spec, session, driver, plan)
        return
    allowed_stream(spec, session, driver, plan)
    denied_calls(spec, session, driver, plan)
    limited_calls(spec, session, driver, plan)
    relayed(spec, session, plan)
    throughput(spec, session, driver, plan)
    tool_lists(spec, session, plan)
    if spec.gated:
        spec.figures["rss_final_mb"] = rss_bytes(session.pid) / 2**20
    opa_figures(spec, session, plan)
