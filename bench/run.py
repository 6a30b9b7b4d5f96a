"""``python -m bench.run``: measure direct vs. regogate (embedded OPA) vs. regogate (external OPA on TCP).

Every repetition starts fresh sessions of each path against the same upstream (bench/echo_server.py)
and the same policy (bench/bench.yaml), sends the same seeded call mix, and records every figure of
docs/benchmarks.md; the report gives each figure's median with its min and max over repetitions.
``--smoke`` runs a handful of calls (``make test`` does, so the harness never rots).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from bench._bridge import bridge_section
from bench._measure import PathSpec, Plan, embedded_opa_pid, embedded_opa_url, measure
from bench._report import Results, machine_facts, render
from bench._session import BenchError, Session, bench_env
from bench.gateway import gateway_section
from regogate.converters import gate_bundle, load_policy, policy_bundle, write_bundle
from regogate.proxy.policy import find_opa

ROOT = Path(__file__).resolve().parent.parent
POLICY = Path(__file__).resolve().parent / "bench.yaml"
ECHO = [sys.executable, "-m", "bench.echo_server"]
REGOGATE = str(Path(sys.executable).parent / "regogate")
#: External OPA start-up; it listens within a second here, the rest is slack for a loaded machine.
OPA_START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def external_opa(opa_bin: str, workdir: Path, log: Path) -> Iterator[tuple[str, int]]:
    """An ``opa run --server`` on loopback TCP with the gate and the bench policy; (url, pid)."""
    policy = load_policy(POLICY)
    write_bundle(policy_bundle(policy, POLICY.read_text(encoding="utf-8")), workdir / "policy")
    write_bundle(gate_bundle(), workdir / "gate")
    port = _free_port()
    argv = [opa_bin, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error"]
    argv += ["--skip-version-check", "--bundle", str(workdir / "gate"), "--bundle", str(workdir / "policy")]
    with open(log, "ab") as sink:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + OPA_START_TIMEOUT
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the external OPA did not start (see {log})")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health?bundles HTTP/1.1\r\nHost: opa\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def peer_path(option: str) -> PathSpec:
    """A ``--peer NAME=COMMAND`` path: ``COMMAND -c bench/bench.yaml -- <echo server>``.

    Raises:
        BenchError: not ``NAME=COMMAND``.
    """
    name, _, command = option.partition("=")
    argv = shlex.split(command)
    if not name.strip() or not argv:
        raise BenchError(f"--peer {option!r}: expected NAME=COMMAND")
    return PathSpec(f"peer:{name.strip()}", [*argv, "-c", str(POLICY), "--", *ECHO], gated=True)


def _paths(opa_url: str, opa_pid: int, workdir: Path, rep: int, peers: Sequence[str] = ()) -> list[PathSpec]:
    # The memory store unless a path says otherwise (embedded-sqlite's later --state wins): the default
    # store is a file in the user's home, which a benchmark must not touch.
    gated = [REGOGATE, "-c", str(POLICY), "--log-level", "error", "--state", "memory"]
    sqlite = f"sqlite:///{workdir}/state-{rep}.db"
    return [
        PathSpec("direct", ECHO, gated=False),
        PathSpec(
            "embedded",
            [*gated, "--", *ECHO],
            gated=True,
            opa_url=embedded_opa_url,
            opa_pid=embedded_opa_pid,
        ),
        PathSpec(
            "tcp",
            [*gated, "--opa-url", opa_url, "--", *ECHO],
            gated=True,
            opa_url=lambda _session: opa_url,
            opa_pid=lambda _session: opa_pid,
        ),
        PathSpec("embedded-sqlite", [*gated, "--state", sqlite, "--", *ECHO], gated=True, full=False),
        *(peer_path(option) for option in peers),
    ]


def run(plan: Plan, *, workdir: Path, progress: bool = True, peers: Sequence[str] = ()) -> Results:
    """Every repetition of every path (and of each ``--peer NAME=COMMAND``); the figures, rep by rep.

    Raises:
        BenchError: a path misbehaved.
    """
    opa_bin = find_opa(None)
    env = bench_env(ROOT)
    log = workdir / "stderr.log"
    results: Results = []
    with external_opa(opa_bin, workdir / "opa", log) as (opa_url, opa_pid), open(log, "ab") as stderr:
        for rep in range(plan.repeat):
            figures: dict[str, dict[str, float]] = {}
            for spec in _paths(opa_url, opa_pid, workdir, rep, peers):
                if progress:
                    sys.stderr.write(f"bench: repetition {rep + 1}/{plan.repeat}, {spec.name}\n")
                session = Session(spec.argv, env=env, stderr=stderr)
                try:
                    measure(spec, session, plan, plan.seed + rep)
                finally:
                    status = session.close()
                if status != 0:
                    raise BenchError(f"{spec.name} exited with status {status} (see {log})")
                figures[spec.name] = spec.figures
            results.append(figures)
    return results


def _section(name: str, build: Callable[[], str]) -> str:
    """A later section's Markdown, or a note of its failure: the figures measured before it are kept."""
    try:
        return build()
    except (BenchError, OSError, subprocess.SubprocessError) as error:
        sys.stderr.write(f"bench: the {name} section failed: {error}\n")
        return f"\n## {name.capitalize()}\n\nNot measured in this run: {error}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--output", type=Path, help="write the Markdown report here (default: stdout)")
    parser.add_argument("--smoke", action="store_true", help="a handful of calls, one repetition")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3; 1 with --smoke)")
    parser.add_argument("--calls", type=int, help="measured sequential allowed calls per repetition (default 2000)")
    parser.add_argument("--seed", type=int, help="seed of the call mix")
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="also measure another proxy run as `COMMAND -c POLICY -- SERVER` (repeatable)",
    )
    parser.add_argument(
        "--only",
        choices=["bridge"],
        help="measure one section alone and print it (the bridge: regogate --upstream URL against direct HTTP)",
    )
    args = parser.parse_args(argv)
    plan = Plan.smoke() if args.smoke else Plan()
    if args.repeat:
        plan = replace(plan, repeat=args.repeat)
    if args.calls:
        plan = replace(plan, calls=args.calls)
    if args.seed is not None:
        plan = replace(plan, seed=args.seed)
    command = shlex.join(["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)])
    for option in args.peer:
        try:
            peer_path(option)  # refuse a malformed --peer before minutes of measuring
        except BenchError as error:
            parser.error(str(error))
    if args.only == "bridge":
        with tempfile.TemporaryDirectory(prefix="regogate-bench-") as workdir:
            sys.stdout.write(bridge_section(plan, workdir=Path(workdir), regogate=REGOGATE, policy=POLICY, root=ROOT))
        return 0
    facts = machine_facts(find_opa(None), ROOT)
    with tempfile.TemporaryDirectory(prefix="regogate-bench-") as workdir:
        started = time.monotonic()
        results = run(plan, workdir=Path(workdir), peers=args.peer)
        bridge = _section(
            "bridge", lambda: bridge_section(plan, workdir=Path(workdir), regogate=REGOGATE, policy=POLICY, root=ROOT)
        )
        bridge += _section("gateway", lambda: gateway_section(repeat=plan.repeat, smoke=args.smoke))
        elapsed = time.monotonic() - started
    report = render(results, plan, command=command, facts=facts, elapsed=elapsed) + bridge
    if args.output:
        args.output.write_text(report, encoding="utf-8")
        sys.stderr.write(f"bench: wrote {args.output} in {elapsed:.0f} s\n")
    else:
        sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
