"""``python -m bench.ab OLD NEW``: two source trees of regogate, measured in interleaved rounds of one run.

OLD and NEW are git revisions (or ``.`` for the working tree); each is exported to a temporary
directory and run by this checkout's Python with ``regogate`` mapped onto that tree, so both
versions share one interpreter, one OPA, one echo server and the same moment's machine load.
Each round runs direct, then OLD and NEW in alternating order, through the chosen sections of
``bench/_measure.py``; the report gives each figure's median per version, "added" (the version
minus direct in the same round) and NEW/OLD. For focused A/B work; ``make bench`` is the record.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bench import _measure as m
from bench._session import BenchError, Session, bench_env

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "bench" / "bench.yaml"
ECHO = [sys.executable, "-m", "bench.echo_server"]
#: Runs regogate's command line from another source tree (argv[1]) with this interpreter.
LAUNCHER = """
import sys, runpy
tree = sys.argv.pop(1)
import __editable___regogate_0_1_0_finder as finder
for name, path in list(finder.MAPPING.items()):
    finder.MAPPING[name] = tree + "/" + path.rsplit("/", 1)[1]
sys.argv[0] = "regogate"
from regogate.proxy.cli._main import main
raise SystemExit(main())
"""

Section = Callable[[m.PathSpec, Session, m.Driver, m.Plan], None]
SECTIONS: dict[str, Section] = {
    "calls": lambda spec, session, driver, plan: m.allowed_stream(spec, session, driver, plan),
    "denied": lambda spec, session, driver, plan: m.denied_calls(spec, session, driver, plan),
    "relayed": lambda spec, session, driver, plan: m.relayed(spec, session, plan),
    "throughput": lambda spec, session, driver, plan: m.throughput(spec, session, driver, plan),
    "lists": lambda spec, session, driver, plan: m.tool_lists(spec, session, plan),
}
#: Figures that are not latencies: "added" makes no sense for them.
ABSOLUTE = ("cpu_", "tree_", "rss_", "throughput_")


def export(revision: str, into: Path) -> Path:
    """The source tree at ``revision`` (``.``: the working tree as it is), under ``into``."""
    if revision == ".":
        return ROOT
    into.mkdir(parents=True)
    archive = into.with_suffix(".tar")
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), revision], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


Figures = dict[str, dict[str, float]]


def one_round(trees: dict[str, Path], plan: m.Plan, sections: Sequence[str], seed: int, launcher: Path) -> Figures:
    env = bench_env(ROOT, *trees.values())
    names = ["direct", *(trees if seed % 2 == 0 else reversed(list(trees)))]
    figures: dict[str, dict[str, float]] = {}
    with open(os.devnull, "wb") as stderr:
        for name in names:
            if name == "direct":
                spec = m.PathSpec("direct", ECHO, gated=False)
            else:
                argv = [sys.executable, str(launcher), str(trees[name]), "-c", str(POLICY)]
                argv += ["--log-level", "error", "--state", "memory", "--", *ECHO]
                spec = m.PathSpec(name, argv, gated=True, opa_pid=m.embedded_opa_pid)
            session = Session(spec.argv, env=env, stderr=stderr)
            try:
                driver = m.Driver(session, seed)
                m.start(spec, session)
                for section in sections:
                    SECTIONS[section](spec, session, driver, plan)
            finally:
                status = session.close()
            if status != 0:
                raise BenchError(f"{name} exited with status {status}")
            figures[name] = spec.figures
    return figures


def report(rounds: list[Figures], old: str, new: str) -> str:
    lines = [
        f"| figure | direct | {old} | {new} | added {old} | added {new} | new/old |",
        "|---|---|---|---|---|---|---|",
    ]
    for figure in rounds[0][old]:

        def med(path: str, key: str = figure) -> float:
            values = [r[path][key] for r in rounds if key in r.get(path, {})]
            return statistics.median(values) if values else float("nan")

        absolute = figure.startswith(ABSOLUTE)
        direct = med("direct")
        a, b = med(old), med(new)
        if absolute:
            shown = f"{b / a:.2f}" if a else ""
            lines.append(f"| {figure} | {direct:.1f} | {a:.1f} | {b:.1f} | | | {shown} |")
            continue
        added = [statistics.median([r[p][figure] - r["direct"].get(figure, 0.0) for r in rounds]) for p in (old, new)]
        ratio = added[1] / added[0] if added[0] else float("nan")
        lines.append(f"| {figure} | {direct:.0f} | {a:.0f} | {b:.0f} | {added[0]:.0f} | {added[1]:.0f} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("old", help="git revision of the baseline")
    parser.add_argument("new", help="git revision to compare ('.' = the working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sections", default="calls,relayed,lists", help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--calls", type=int, default=1000, help="sequential allowed calls per round")
    args = parser.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    total = args.calls + 200
    plan = replace(
        m.Plan(), calls=args.calls, growth_calls=total, growth_checkpoint=total // 2, growth_window=total // 4
    )
    with tempfile.TemporaryDirectory(prefix="regogate-ab-") as work:
        workdir = Path(work)
        launcher = workdir / "launch.py"
        launcher.write_text(LAUNCHER, encoding="utf-8")
        trees = {"old": export(args.old, workdir / "old"), "new": export(args.new, workdir / "new")}
        rounds = []
        for index in range(args.rounds):
            sys.stderr.write(f"ab: round {index + 1}/{args.rounds}\n")
            rounds.append(one_round(trees, plan, sections, m.Plan().seed + index, launcher))
            sys.stderr.write(json.dumps(rounds[-1]) + "\n")
    sys.stdout.write(f"`python -m bench.ab {args.old} {args.new}` ({args.rounds} rounds, {','.join(sections)})\n\n")
    sys.stdout.write(report(rounds, "old", "new"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
