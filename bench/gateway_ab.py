"""``python -m bench.gateway_ab OLD NEW``: ``regogate serve`` from two source trees, in interleaved rounds.

OLD and NEW are git revisions (``.``: the working tree), exported and launched as ``bench.ab`` does,
so both run on one interpreter, one OPA and the same moment's machine load. Each round measures
direct HTTP, then OLD and NEW in alternating order: one client's sequential calls (p50, p90), then
decided calls/s with ``--clients`` keep-alive clients, and the CPU per call of regogate and of its
OPA in that run (seconds of CPU from /proc, the figure least moved by other load). OPA does the same
work per call in both trees, so ``cpu_per_opa`` (regogate's CPU over OPA's in the same run) cancels
the machine's own swings in speed, which move both alike. The report gives each figure's median per
version and NEW/OLD, and the per-round NEW/OLD of the CPU figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench import gateway as g
from bench._measure import percentile
from bench._session import bench_env, cpu_seconds
from bench.ab import LAUNCHER, export

FIGURES = ("p50_us", "p90_us", "added_p50_us", "calls_per_second", "cpu_ms", "opa_cpu_ms", "cpu_per_opa")


def _opa(pid: int) -> int | None:
    for child in g._children(pid):
        if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0].endswith(b"opa"):
            return child
    return None


def one_path(command: list[str], env: dict[str, str], *, clients: int, calls: int, sequential: int) -> dict[str, float]:
    with g.gateway(env, max_sessions=clients + 2, command=command) as (port, process):
        opa = _opa(process.pid)
        samples = g._sequential(port, 100, sequential)
        before = cpu_seconds(process.pid), cpu_seconds(opa) if opa else 0.0
        rate = g._throughput(port, clients, calls)
        after = cpu_seconds(process.pid), cpu_seconds(opa) if opa else 0.0
    decided = clients * (calls + 1)
    return {
        "p50_us": percentile(samples, 50) / 1000,
        "p90_us": percentile(samples, 90) / 1000,
        "calls_per_second": rate,
        "cpu_ms": (after[0] - before[0]) / decided * 1000,
        "opa_cpu_ms": (after[1] - before[1]) / decided * 1000,
        "cpu_per_opa": (after[0] - before[0]) / (after[1] - before[1]) if after[1] > before[1] else float("nan"),
    }


def _ratio(new: float, old: float) -> str:
    """NEW/OLD; ``nan`` when OLD is 0 (a run too short for the 10 ms CPU clock)."""
    return f"{new / old:.2f}" if old else "nan"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_ab", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("old", help="git revision of the baseline")
    parser.add_argument("new", help="git revision to compare ('.' = the working tree)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=300, help="calls per client in each throughput run")
    parser.add_argument("--sequential", type=int, default=800, help="calls in each latency run")
    args = parser.parse_args(argv)
    sizes = {"clients": args.clients, "calls": args.calls, "sequential": args.sequential}
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="regogate-gateway-ab-") as work:
        workdir = Path(work)
        launcher = workdir / "launch.py"
        launcher.write_text(LAUNCHER, encoding="utf-8")
        trees = {"old": export(args.old, workdir / "old"), "new": export(args.new, workdir / "new")}
        env = bench_env(g.ROOT, *trees.values())
        for index in range(args.rounds):
            with g.direct_server(env) as port:
                figures = {"direct": {"p50_us": percentile(g._sequential(port, 100, args.sequential), 50) / 1000}}
            for name in ("old", "new") if index % 2 == 0 else ("new", "old"):
                command = [sys.executable, str(launcher), str(trees[name])]
                figures[name] = one_path(command, env, **sizes)
                figures[name]["added_p50_us"] = figures[name]["p50_us"] - figures["direct"]["p50_us"]
            rounds.append(figures)
            sys.stderr.write(json.dumps(figures) + "\n")
    lines = [f"`python -m bench.gateway_ab {args.old} {args.new}` ({args.rounds} rounds)", ""]
    lines += ["| figure (median of rounds) | old | new | new/old |", "|---|---|---|---|"]
    for figure in FIGURES:
        old, new = (statistics.median(r[name][figure] for r in rounds) for name in ("old", "new"))
        lines.append(f"| {figure} | {old:.2f} | {new:.2f} | {new / old if old else float('nan'):.2f} |")
    for figure in ("cpu_ms", "cpu_per_opa"):
        ratios = ", ".join(_ratio(r["new"][figure], r["old"][figure]) for r in rounds)
        lines.append(f"\nper-round new/old {figure}: {ratios}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
