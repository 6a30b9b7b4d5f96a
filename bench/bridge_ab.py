"""``python -m bench.bridge_ab OLD NEW``: the bridge (``regogate --upstream URL``) from two source trees, interleaved.

OLD and NEW are git revisions (``.``: the working tree), exported and launched as ``bench.ab`` does.
Each round starts bench/http_echo_server.py and, from each tree, a bridge to it and a stdio relay in
front of bench/echo_server.py, then sends the same ``tools/call`` to every path in turn, call by
call (the order flips each round), so all four see the same moment's machine load. Figures per path:
p50 of the round trip and the CPU per call of regogate alone and of its OPA (from /proc). The figure
this exists for is ``bridge/stdio``: a bridge's regogate CPU over the same tree's stdio relay's, for
the same calls in the same seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench._bridge import STDIO_SERVER, _echo, _start_server, handshake
from bench._measure import embedded_opa_pid, percentile
from bench._session import BenchError, Session, bench_env, cpu_seconds
from bench.ab import LAUNCHER, POLICY, export

FIGURES = ("p50_us", "cpu_us", "opa_cpu_us")


def one_round(
    trees: dict[str, Path], launcher: Path, env: dict[str, str], calls: int, flip: bool
) -> dict[str, dict[str, float]]:
    """One round's figures per path (``bridge_old``, ``stdio_old``, ``bridge_new``, ``stdio_new``)."""
    with open(os.devnull, "wb") as stderr:
        server, port = _start_server(stderr, env)
        paths: dict[str, Session] = {}
        try:
            names = list(trees) if not flip else list(reversed(list(trees)))
            for name in names:
                gated = [sys.executable, str(launcher), str(trees[name]), "-c", str(POLICY)]
                gated += ["--log-level", "error", "--state", "memory"]
                paths[f"bridge_{name}"] = Session(
                    [*gated, "--upstream", f"http://127.0.0.1:{port}/mcp"], env=env, stderr=stderr
                )
                paths[f"stdio_{name}"] = Session([*gated, "--", *STDIO_SERVER], env=env, stderr=stderr)
            for session in paths.values():
                handshake(session)
            samples: dict[str, list[int]] = {name: [] for name in paths}
            warmup = 100

            def rotate(count: int, offset: int) -> None:
                for index in range(count):
                    for name, session in paths.items():
                        timed, replies = session.timed([_echo(session, offset + index)])
                        if b'"isError":false' not in replies[0]:
                            raise BenchError(f"{name} answered a call with {replies[0][:200]!r}")
                        if offset:
                            samples[name] += timed

            rotate(warmup, 0)
            opa = {name: embedded_opa_pid(session) for name, session in paths.items()}
            before = {name: (cpu_seconds(s.pid), cpu_seconds(opa[name])) for name, s in paths.items()}
            rotate(calls, warmup)
            after = {name: (cpu_seconds(s.pid), cpu_seconds(opa[name])) for name, s in paths.items()}
        finally:
            statuses = {name: session.close() for name, session in paths.items()}
            server.kill()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()
    if any(statuses.values()):
        raise BenchError(f"a measured process exited with a failure: {statuses}")
    return {
        name: {
            "p50_us": percentile(samples[name], 50) / 1000,
            "cpu_us": (after[name][0] - before[name][0]) / calls * 1e6,
            "opa_cpu_us": (after[name][1] - before[name][1]) / calls * 1e6,
        }
        for name in paths
    }


def _tree(revision: str, into: Path) -> Path:
    """A source tree: a directory as it is (a scratch copy, say), else the git revision exported."""
    return Path(revision) if revision != "." and Path(revision).is_dir() else export(revision, into)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge_ab", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("old", help="git revision of the baseline (or a source tree's directory)")
    parser.add_argument("new", help="git revision to compare ('.' = the working tree; or a directory)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=400, help="calls on each path in each round")
    args = parser.parse_args(argv)
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="regogate-bridge-ab-") as work:
        workdir = Path(work)
        launcher = workdir / "launch.py"
        launcher.write_text(LAUNCHER, encoding="utf-8")
        trees = {name: _tree(revision, workdir / name) for name, revision in (("old", args.old), ("new", args.new))}
        env = bench_env(Path(__file__).resolve().parent.parent, *trees.values())
        for index in range(args.rounds):
            sys.stderr.write(f"bridge_ab: round {index + 1}/{args.rounds}, load {os.getloadavg()[0]:.1f}\n")
            rounds.append(one_round(trees, launcher, env, args.calls, flip=index % 2 == 1))
            sys.stderr.write(json.dumps(rounds[-1]) + "\n")

    def med(path: str, figure: str) -> float:
        return statistics.median(r[path][figure] for r in rounds)

    def ratio(top: str, bottom: str, figure: str = "cpu_us") -> float:
        return statistics.median(r[top][figure] / r[bottom][figure] for r in rounds)

    lines = [f"`python -m bench.bridge_ab {args.old} {args.new}` ({args.rounds} rounds x {args.calls} calls)", ""]
    lines += ["| figure (median of rounds) | bridge old | bridge new | stdio old | stdio new | bridge new/old |"]
    lines += ["|---|---|---|---|---|---|"]
    for figure in FIGURES:
        row = [
            med(f"{p}_{t}", figure)
            for p, t in (("bridge", "old"), ("bridge", "new"), ("stdio", "old"), ("stdio", "new"))
        ]
        cells = " | ".join(f"{value:.0f}" for value in row)
        lines.append(f"| {figure} | {cells} | {ratio('bridge_new', 'bridge_old', figure):.2f} |")
    lines += [
        "",
        f"regogate CPU, bridge/stdio (per round, median): old {ratio('bridge_old', 'stdio_old'):.2f}, "
        f"new {ratio('bridge_new', 'stdio_new'):.2f}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
