"""The Markdown report: machine facts, the command, every figure (median, min to max over repetitions), targets."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench._measure import Plan

#: Hand-written analysis (profiles, what stands in the way), appended to every report.
NOTES = Path(__file__).resolve().parent / "notes.md"

#: rep -> path -> figure -> value
Results = list[dict[str, dict[str, float]]]
Getter = Callable[[dict[str, dict[str, float]]], float]

GATED = ("embedded", "tcp")
LABELS = {
    "direct": "direct",
    "embedded": "regogate, embedded OPA (unix socket)",
    "tcp": "regogate, external OPA (TCP)",
    "embedded-sqlite": "regogate, embedded OPA, SQLite store",
}


def label(path: str) -> str:
    """A path's row label; ``peer:NAME`` (``--peer``) reads as ``NAME (peer)``."""
    return LABELS.get(path) or f"{path.removeprefix('peer:')} (peer)"


def peers(results: Results) -> list[str]:
    """The ``--peer`` paths of a run, in the order they ran."""
    return [path for path in results[0] if path.startswith("peer:")] if results else []


def summed(path: str, *names: str) -> Getter:
    return lambda rep: sum(rep[path][name] for name in names)


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True, cwd=cwd).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_facts(opa_bin: str, root: Path) -> dict[str, str]:
    cpu = "unknown"
    memory = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
        with open("/proc/meminfo", encoding="utf-8") as info:
            kib = next(int(line.split()[1]) for line in info if line.startswith("MemTotal"))
            memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    commit = _run(["git", "rev-parse", "--short", "HEAD"], root)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], root)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "opa": _run([opa_bin, "version"]).splitlines()[0] if opa_bin else "unknown",
        "regogate": f"{commit}{' (with uncommitted changes)' if dirty else ''}",
    }


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    def text(self, digits: int = 0, signed: bool = False) -> str:
        sign = "+" if signed else ""
        mid = f"{self.median:{sign}.{digits}f}"
        if self.low == self.high:
            return mid
        return f"{mid} ({self.low:{sign}.{digits}f} … {self.high:{sign}.{digits}f})"


def spread(results: Results, get: Getter) -> Spread | None:
    try:
        values = [get(rep) for rep in results]
    except KeyError:
        return None
    return Spread(statistics.median(values), min(values), max(values))


def fig(path: str, name: str) -> Getter:
    return lambda rep: rep[path][name]


def added(path: str, name: str, base: str = "direct", base_name: str | None = None) -> Getter:
    return lambda rep: rep[path][name] - rep[base][base_name or name]


def ratio(path: str, name: str) -> Getter:
    return lambda rep: rep[path][name] / rep["direct"][name]


def change(path: str, before: str, after: str) -> Getter:
    return lambda rep: (rep[path][after] / rep[path][before] - 1) * 100


class _Table:
    def __init__(self, results: Results, header: list[str]) -> None:
        self.results = results
        self.lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(self, label: str, *cells: tuple[Getter, int, bool] | str) -> None:
        texts = [label]
        for cell in cells:
            if isinstance(cell, str):
                texts.append(cell)
                continue
            get, digits, signed = cell
            value = spread(self.results, get)
            texts.append("-" if value is None else value.text(digits, signed))
        self.lines.append("| " + " | ".join(texts) + " |")

    def text(self) -> str:
        return "\n".join(self.lines)


def _targets() -> list[tuple[str, str, Callable[[float], bool], Getter, Getter | None]]:
    """Issue 16's targets (first seven), then the earlier ones that still hold the line."""
    return [
        ("added latency per allowed call, p50", "≤ 250 µs", lambda v: v <= 250,
         added("embedded", "call_p50_us"), added("tcp", "call_p50_us")),
        ("added latency per allowed call, p99", "≤ 1500 µs", lambda v: v <= 1500,
         added("embedded", "call_p99_us"), added("tcp", "call_p99_us")),
        ("CPU per decided call, regogate + OPA", "≤ 350 µs", lambda v: v <= 350,
         summed("embedded", "cpu_proxy_us", "cpu_opa_us"), summed("tcp", "cpu_proxy_us", "cpu_opa_us")),
        ("decided calls/s, 8 in flight", "≥ 6000", lambda v: v >= 6000,
         fig("embedded", "throughput_8"), fig("tcp", "throughput_8")),
        ("relayed-only message (ping), added p50", "≤ 30 µs", lambda v: v <= 30,
         added("embedded", "ping_p50_us"), added("tcp", "ping_p50_us")),
        ("relayed-only message (resources/read), added p50", "≤ 30 µs", lambda v: v <= 30,
         added("embedded", "read_p50_us"), added("tcp", "read_p50_us")),
        ("start-up (spawn → `initialize` answered), added", "≤ 150 ms", lambda v: v <= 150,
         added("embedded", "ready_initialize_ms"), added("tcp", "ready_initialize_ms")),
        ("regogate + OPA peak RSS after 10,000 calls", "≤ 70 MB", lambda v: v <= 70,
         fig("embedded", "tree_peak_rss_mb"), fig("tcp", "tree_peak_rss_mb")),
        ("tools/list of 1,000 tools, added p50", "≤ 5000 µs", lambda v: v <= 5000,
         added("embedded", "list_1000_p50_us"), added("tcp", "list_1000_p50_us")),
        ("rate-limited call, memory store, extra p50", "≤ 100 µs", lambda v: v <= 100,
         added("embedded", "limited_p50_us", "embedded", "unlimited_p50_us"),
         added("tcp", "limited_p50_us", "tcp", "unlimited_p50_us")),
        ("rate-limited call, SQLite store, extra p50", "≤ 500 µs", lambda v: v <= 500,
         added("embedded-sqlite", "limited_p50_us", "embedded-sqlite", "unlimited_p50_us"), None),
        ("RSS growth, call 1,000 → 10,000", "within ±10%", lambda v: abs(v) <= 10,
         change("embedded", "rss_checkpoint_mb", "rss_end_mb"), change("tcp", "rss_checkpoint_mb", "rss_end_mb")),
        ("latency growth (p50), call 1,000 → 10,000", "within ±10%", lambda v: abs(v) <= 10,
         change("embedded", "growth_lat_checkpoint_us", "growth_lat_end_us"),
         change("tcp", "growth_lat_checkpoint_us", "growth_lat_end_us")),
    ]  # fmt: skip


def _tree_cpu_added(path: str) -> Getter:
    def get(rep: dict[str, dict[str, float]]) -> float:
        own = rep[path]
        return (
            own.get("cpu_proxy_us", 0)
            + own.get("cpu_opa_us", 0)
            + own["cpu_upstream_us"]
            - rep["direct"]["cpu_upstream_us"]
        )

    return get


def render(results: Results, plan: Plan, *, command: str, facts: dict[str, str], elapsed: float) -> str:
    """The whole report."""
    out: list[str] = []
    add = out.append
    add("# regogate benchmarks\n")
    add(
        "Generated by `make bench`; do not edit by hand. Each figure is the median over the repetitions, "
        'with (min … max) when they differ. "Added" is the path minus direct in the same repetition.\n'
    )
    add(f"Command: `{command}` (run from the repository root; `make bench` runs it), {elapsed:.0f} s.\n")
    add("| machine | |\n|---|---|")
    for key, value in facts.items():
        add(f"| {key} | {value} |")
    add("")
    add(
        f"Plan: {plan.repeat} repetitions; seed {plan.seed}; {plan.warmup} warm-up calls, then {plan.calls} "
        f"sequential allowed `tools/call`s measured; the same stream runs on to {plan.growth_calls} calls for "
        f"growth (p50 of the {plan.growth_window} calls before call {plan.growth_checkpoint} and before call "
        f"{plan.growth_calls}); {plan.side_calls} measured calls for each other latency; "
        f"{plan.throughput_calls} calls per throughput run (mix: 80% allowed, 10% rate-limited, 10% denied); "
        f"{plan.list_calls} `tools/list` per size; {plan.metrics_calls} OPA metrics queries. Upstream: "
        "`bench/echo_server.py`; policy: `bench/bench.yaml`; client: `bench/_session.py` (raw JSON lines "
        "on pipes). Paths: "
        + "; ".join(f"`{k}` = {v}" for k, v in LABELS.items())
        + "".join(f"; `{p}` = `--peer` (run as `COMMAND -c POLICY -- SERVER`)" for p in peers(results))
        + ".\n"
    )
    paths = ["direct", *GATED, *peers(results)]

    add("## Targets\n")
    table = _Table(results, ["measure", "target", "embedded OPA", "met", "external OPA (TCP)", "met"])
    for measure, target, ok, embedded, tcp in _targets():
        verdicts: list[tuple[Getter, int, bool] | str] = []
        for get in (embedded, tcp):
            measured = spread(results, get) if get is not None else None
            if get is None or measured is None:
                verdicts += ["-", ""]
                continue
            digits = 1 if abs(measured.median) < 100 else 0
            verdicts += [(get, digits, False), "yes" if ok(measured.median) else "**no**"]
        table.row(measure, target, *verdicts)
    add(table.text() + "\n")

    add("## Added latency per allowed `tools/call` (µs)\n")
    table = _Table(results, ["path", "p50", "p90", "p99", "added p50", "added p90", "added p99"])
    for path in paths:
        qs = ("call_p50_us", "call_p90_us", "call_p99_us")
        table.row(label(path), *((fig(path, q), 0, False) for q in qs), *((added(path, q), 0, True) for q in qs))
    add(table.text() + "\n")

    add("## A denied call's round trip (µs)\n")
    add("Direct has no policy: the same call is simply answered, which is the baseline.\n")
    table = _Table(results, ["path", "p50", "p99", "added p50", "added p99"])
    for path in paths:
        table.row(
            label(path),
            (fig(path, "denied_p50_us"), 0, False),
            (fig(path, "denied_p99_us"), 0, False),
            (added(path, "denied_p50_us"), 0, True),
            (added(path, "denied_p99_us"), 0, True),
        )
    add(table.text() + "\n")

    add("## Extra cost of a rate-limited call (µs, p50; interleaved with unlimited calls)\n")
    table = _Table(results, ["path and store", "unlimited", "rate-limited", "extra", "unlimited, added vs direct"])
    for path in ("embedded", "tcp", "embedded-sqlite"):
        table.row(
            label(path) + ("" if path.endswith("sqlite") else ", memory store"),
            (fig(path, "unlimited_p50_us"), 0, False),
            (fig(path, "limited_p50_us"), 0, False),
            (added(path, "limited_p50_us", path, "unlimited_p50_us"), 1, True),
            (added(path, "unlimited_p50_us"), 0, True),
        )
    add(table.text() + "\n")

    add("## Messages the proxy only relays (µs)\n")
    table = _Table(
        results, ["path", "ping p50", "ping p99", "added p50", "resources/read p50", "read p99", "added p50"]
    )
    for path in paths:
        table.row(
            label(path),
            (fig(path, "ping_p50_us"), 0, False),
            (fig(path, "ping_p99_us"), 0, False),
            (added(path, "ping_p50_us"), 0, True),
            (fig(path, "read_p50_us"), 0, False),
            (fig(path, "read_p99_us"), 0, False),
            (added(path, "read_p50_us"), 0, True),
        )
    add(table.text() + "\n")

    add("## Throughput (decided calls/s; ratio to direct)\n")
    header = ["path"]
    for n in plan.in_flight:
        header += [f"{n} in flight", "ratio"]
    table = _Table(results, header)
    for path in paths:
        cells: list[tuple[Getter, int, bool] | str] = []
        for n in plan.in_flight:
            cells += [(fig(path, f"throughput_{n}"), 0, False), (ratio(path, f"throughput_{n}"), 2, False)]
        table.row(label(path), *cells)
    add(table.text() + "\n")

    add("## `tools/list` filtering (µs, p50)\n")
    header = ["path"]
    for n in plan.list_sizes:
        header += [f"{n} tools", "added"]
    table = _Table(results, header)
    for path in paths:
        cells = []
        for n in plan.list_sizes:
            cells += [(fig(path, f"list_{n}_p50_us"), 0, False), (added(path, f"list_{n}_p50_us"), 0, True)]
        table.row(label(path), *cells)
    add(table.text() + "\n")

    add("## CPU per allowed call (µs; `/proc/<pid>/stat` user + system, over the whole sequential stream)\n")
    add(
        "Each process of the tree: the proxy (regogate or a peer, with any helper process of its own), OPA "
        "(the embedded child, or the external OPA), the upstream echo server. Direct is the upstream alone. "
        "Clock ticks are 10 ms, so a figure is good to about "
        f"{1e6 / 100 / max(plan.growth_calls, 1):.0f} µs per call.\n"
    )
    table = _Table(results, ["path", "proxy", "OPA", "upstream", "proxy + OPA", "whole tree, added vs direct"])
    for path in paths:
        table.row(
            label(path),
            (fig(path, "cpu_proxy_us"), 0, False) if path != "direct" else "-",
            (fig(path, "cpu_opa_us"), 0, False) if path != "direct" else "-",
            (fig(path, "cpu_upstream_us"), 0, False),
            (summed(path, "cpu_proxy_us", "cpu_opa_us"), 0, False) if path != "direct" else "-",
            (_tree_cpu_added(path), 0, True),
        )
    add(table.text() + "\n")

    add("## Memory and growth\n")
    add(
        "RSS is `VmRSS` of the regogate process (OPA separately; direct is the echo server itself). "
        "Proxy + OPA is the sum over the proxy's processes and OPA after the stream of "
        f"{plan.growth_calls} calls: `VmRSS` then, and `VmHWM` (the peak so far; the external OPA is shared "
        "by every repetition).\n"
    )
    table = _Table(
        results,
        [
            "path",
            f"RSS at call {plan.growth_checkpoint} (MB)",
            f"RSS at call {plan.growth_calls} (MB)",
            "change %",
            f"p50 before call {plan.growth_checkpoint} (µs)",
            f"p50 before call {plan.growth_calls} (µs)",
            "change %",
            "OPA RSS (MB)",
            "proxy + OPA RSS (MB)",
            "proxy + OPA peak (MB)",
        ],
    )
    for path in paths:
        table.row(
            label(path),
            (fig(path, "rss_checkpoint_mb"), 1, False),
            (fig(path, "rss_end_mb"), 1, False),
            (change(path, "rss_checkpoint_mb", "rss_end_mb"), 1, True),
            (fig(path, "growth_lat_checkpoint_us"), 0, False),
            (fig(path, "growth_lat_end_us"), 0, False),
            (change(path, "growth_lat_checkpoint_us", "growth_lat_end_us"), 1, True),
            (fig(path, "opa_rss_mb"), 1, False) if path != "direct" else "-",
            (fig(path, "tree_rss_mb"), 1, False) if path != "direct" else "-",
            (fig(path, "tree_peak_rss_mb"), 1, False) if path != "direct" else "-",
        )
    add(table.text() + "\n")

    add("## Start-to-ready (ms, from spawn)\n")
    table = _Table(results, ["path", "`initialize` answered", "added", "first decided call answered", "added"])
    for path in [*paths, "embedded-sqlite"]:
        table.row(
            label(path),
            (fig(path, "ready_initialize_ms"), 0, False),
            (added(path, "ready_initialize_ms"), 0, True),
            (fig(path, "ready_call_ms"), 0, False),
            (added(path, "ready_call_ms"), 0, True),
        )
    add(table.text() + "\n")

    add("## OPA's own evaluation time per decision (µs, p50)\n")
    add(
        "`eval` and `handler` are OPA's `timer_rego_query_eval_ns` and `timer_server_handler_ns` (`metrics=true`); "
        "`round trip` is regogate's own OPA client (`OpaClient.evaluate`, no metrics) on the same input. "
        "The HTTP hop is round trip minus eval.\n"
    )
    table = _Table(results, ["OPA", "eval", "handler", "client round trip", "HTTP hop", "outside OPA's handler"])
    for path in GATED:
        table.row(
            label(path),
            (fig(path, "opa_eval_p50_us"), 0, False),
            (fig(path, "opa_handler_p50_us"), 0, False),
            (fig(path, "opa_client_rtt_p50_us"), 0, False),
            (added(path, "opa_client_rtt_p50_us", path, "opa_eval_p50_us"), 0, False),
            (added(path, "opa_client_rtt_p50_us", path, "opa_handler_p50_us"), 0, False),
        )
    add(table.text() + "\n")
    if NOTES.is_file():
        add(NOTES.read_text(encoding="utf-8").rstrip())
    return "\n".join(out) + "\n"
