"""``regogate run``: put a policy gate between an MCP client (our stdio) and an upstream MCP server."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, cast

import anyio

from regogate.converters import Policy, gate_bundle, load_policy, mask_bundle, policy_bundle, write_bundle
from regogate.core import ConfigError, LogArgs, PolicySourceError, RegogateError, StateError, SystemClock
from regogate.proxy.cli._usage import UsageParser
from regogate.proxy.policy import (
    DEFAULT_DECISION_PATH,
    DEFAULT_TIMEOUT,
    AuditLog,
    CounterRead,
    EmbeddedOpa,
    FailMode,
    GateSettings,
    OpaClient,
    PolicyGateway,
    RevisionAudit,
    RevisionTracker,
    wait_for_bundles,
)
from regogate.proxy.relay import DEFAULT_DENY_PREFIX
from regogate.proxy.state import RedisStore, open_store
from regogate.proxy.transports import run_relay

log = logging.getLogger("regogate")

#: How often the policy file is checked for edits; an edit takes effect within this.
RELOAD_POLL_SECONDS = 0.5
#: How long an external OPA may take to activate its bundles (a first download from a bundle server).
OPA_READY_TIMEOUT: Final = 30.0
EXIT_CONFIG = 1

EPILOG = """\
examples:
  regogate -c policies/python.yaml -- npx -y some-mcp-server
  regogate run -c policies/filesystem.yaml --state sqlite:///var/lib/regogate/state.db \\
      --audit-log /var/log/regogate/audit.jsonl -- mcp-server-filesystem /srv/data
  regogate run -c my-rego-bundle/ --server-id github --opa-url unix:///run/opa.sock -- github-mcp-server
  regogate run -c policies/github.yaml --dry-run --log-level info -- github-mcp-server
  regogate run -c policies/python.yaml --decision-log /var/log/regogate/opa-decisions.jsonl -- python-mcp
  regogate run -c policies/github.yaml --opa-url http://127.0.0.1:8181 --opa-ready-timeout 60 \\
      --state redis://127.0.0.1:6379/0 -- github-mcp-server
"""


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``regogate run``."""
    p = UsageParser(
        prog="regogate run",
        usage="regogate [run] -c POLICY [flags] -- UPSTREAM_COMMAND [ARGS...]",
        description="Relay MCP over stdio to UPSTREAM_COMMAND; every tools/call is decided by OPA first.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="POLICY",
        help="a YAML policy (converted on the fly), or a directory of your own Rego (e.g. -c rego-bundle/)",
    )
    p.add_argument(
        "--server-id",
        metavar="ID",
        help="selects data.regogate.policies.<ID> (default: the policy file name, e.g. python)",
    )
    p.add_argument(
        "--opa-url",
        metavar="URL",
        help="an external OPA: http://127.0.0.1:8181 or unix:///run/opa.sock (default: start one)",
    )
    p.add_argument(
        "--opa-path",
        default=DEFAULT_DECISION_PATH,
        metavar="PATH",
        help=f"decision path queried on OPA (default: {DEFAULT_DECISION_PATH})",
    )
    p.add_argument(
        "--opa-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"deny a call whose decision takes longer (default: {DEFAULT_TIMEOUT})",
    )
    p.add_argument(
        "--opa-ready-timeout",
        type=float,
        default=OPA_READY_TIMEOUT,
        metavar="SECONDS",
        help=(
            "with --opa-url: wait this long for GET /health?bundles to answer 200 (bundles active) "
            f"before serving, else fail to start (default: {OPA_READY_TIMEOUT:g})"
        ),
    )
    p.add_argument(
        "--decision-log",
        metavar="FILE",
        help=(
            "embedded OPA: turn on OPA's decision log and append it to FILE (- for stderr), one JSON event "
            "per line, tool arguments masked as --log-args says"
        ),
    )
    p.add_argument(
        "--opa-bin", metavar="FILE", help="the opa binary for the embedded OPA (default: $REGOGATE_OPA, PATH, cache)"
    )
    p.add_argument(
        "--fail-mode",
        choices=("closed", "open"),
        default="closed",
        help="when OPA or the state store fails: deny (closed, default) or allow (open)",
    )
    p.add_argument(
        "--state-fail-mode",
        choices=("closed", "open"),
        default="closed",
        help="when the state store fails: deny calls that need a counter (closed, default) or admit them uncounted",
    )
    p.add_argument("--dry-run", action="store_true", help="decide and log every call, but never block one")
    p.add_argument(
        "--state",
        default="memory",
        metavar="STORE",
        help="rate-limit counters: memory (default), sqlite:///path/state.db, or redis://[user:pass@]host:port/db",
    )
    p.add_argument("--state-prefix", default="", metavar="PREFIX", help="namespace for counters in a shared store")
    p.add_argument("--audit-log", metavar="FILE", help="append JSON-lines audit events to FILE")
    p.add_argument(
        "--log-args",
        choices=("hash", "none", "full"),
        default="hash",
        help="tool arguments in the audit log: a hash (default), nothing, or in clear",
    )
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="stderr log level (default: warning)",
    )
    p.add_argument(
        "--deny-prefix",
        default=DEFAULT_DENY_PREFIX,
        metavar="TEXT",
        help=f"prefix of denial texts (default: {DEFAULT_DENY_PREFIX!r})",
    )
    p.add_argument("upstream", nargs=argparse.REMAINDER, help="the MCP server command, after --")
    return p


@dataclass(frozen=True)
class RunConfig:
    """``regogate run``'s settings, parsed once."""

    policy: Path
    server_id: str | None
    opa_url: str | None
    opa_path: str
    opa_timeout: float
    opa_ready_timeout: float
    decision_log: str | None
    opa_bin: str | None
    fail_mode: FailMode
    state_fail_mode: FailMode
    dry_run: bool
    state: str
    state_prefix: str
    audit_log: str | None
    log_args: LogArgs
    deny_prefix: str
    upstream: tuple[str, ...]


def parse_args(argv: Sequence[str]) -> RunConfig:
    """Parse and check the flags; usage mistakes exit 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    upstream = list(args.upstream)
    if upstream and upstream[0] == "--":
        upstream = upstream[1:]
    if not upstream:
        parser.error("no upstream MCP server command given after --")
    if args.opa_timeout <= 0:
        parser.error("--opa-timeout must be positive")
    if args.opa_ready_timeout <= 0:
        parser.error("--opa-ready-timeout must be positive")
    if args.decision_log and args.opa_url:
        parser.error("--decision-log is for the embedded OPA; an external OPA logs decisions as its config says")
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="regogate %(levelname)s %(name)s: %(message)s"
    )
    return RunConfig(
        policy=Path(args.config),
        server_id=args.server_id,
        opa_url=args.opa_url,
        opa_path=args.opa_path.strip("/"),
        opa_timeout=args.opa_timeout,
        opa_ready_timeout=args.opa_ready_timeout,
        decision_log=args.decision_log,
        opa_bin=args.opa_bin,
        fail_mode=cast(FailMode, args.fail_mode),  # argparse choices= checked it
        state_fail_mode=cast(FailMode, args.state_fail_mode),
        dry_run=args.dry_run,
        state=args.state,
        state_prefix=args.state_prefix,
        audit_log=args.audit_log,
        log_args=cast(LogArgs, args.log_args),
        deny_prefix=args.deny_prefix,
        upstream=tuple(upstream),
    )


def counter_reads(policy: Policy) -> dict[str, tuple[CounterRead, ...]]:
    """For each tool (``*`` for every call), the counters its conditions read, with their windows."""
    windows = {(r.scope, r.counter.name): r.counter.window for r in policy.rules if r.counter is not None}
    reads: dict[str, set[tuple[str, str]]] = {}
    for rule in policy.rules:
        own = (rule.scope, rule.counter.name) if rule.counter is not None else None
        for condition in rule.conditions:
            if condition.counter is not None and condition.counter != own:
                reads.setdefault(rule.tool, set()).add(condition.counter)
    return {
        tool: tuple(CounterRead(scope, counter, windows[(scope, counter)]) for scope, counter in sorted(refs))
        for tool, refs in reads.items()
    }


class PolicySource:
    """The policy file and the bundles made from it, in a private directory."""

    def __init__(self, config: RunConfig, workdir: Path, *, extra: Sequence[Path] = ()) -> None:
        """``extra`` bundles (the decision-log mask) load next to the policy's, unchanged by edits."""
        self.config = config
        self.workdir = workdir
        self.extra = list(extra)
        self.generation = 0
        self.policy: Policy | None = None
        self.revision = "hand-written"
        self.mtime = 0.0
        self.server_id = config.server_id or ""

    def build(self) -> list[Path]:
        """Convert (or copy) the policy into fresh bundle directories; raises on an invalid policy."""
        self.generation += 1
        target = self.workdir / f"gen{self.generation}"
        self.mtime = _mtime(self.config.policy)
        if self.config.policy.is_dir():
            if not self.config.server_id:
                raise ConfigError("a Rego directory needs --server-id (the id its policies use)")
            return [self.config.policy, *self.extra]
        policy = load_policy(self.config.policy, server_id=self.config.server_id)
        bundle = policy_bundle(policy, self.config.policy.read_text(encoding="utf-8"))
        # The directory's name is the bundle's name in data.system.bundles: the server id.
        policy_dir = target / "policies" / policy.server_id
        write_bundle(bundle, policy_dir)
        write_bundle(gate_bundle(), target / "gate")
        self.policy, self.revision, self.server_id = policy, bundle.revision, policy.server_id
        return [target / "gate", policy_dir, *self.extra]

    def changed(self) -> bool:
        return _mtime(self.config.policy) != self.mtime


def _mtime(path: Path) -> float:
    try:
        if path.is_dir():
            return max((p.stat().st_mtime for p in path.rglob("*.rego")), default=0.0)
        return path.stat().st_mtime
    except OSError:
        return 0.0


@asynccontextmanager
async def _opa(
    config: RunConfig, bundles: list[Path], decision_log: IO[str] | None
) -> AsyncIterator[tuple[OpaClient, EmbeddedOpa | None]]:
    if config.opa_url:
        async with OpaClient(config.opa_url, timeout=config.opa_timeout) as client:
            await wait_for_bundles(client, config.opa_ready_timeout)
            yield client, None
        return

    def sink(line: str) -> None:
        assert decision_log is not None
        decision_log.write(line + "\n")

    async with EmbeddedOpa(
        bundles,
        opa_bin=config.opa_bin,
        client_timeout=config.opa_timeout,
        decision_logs=decision_log is not None,
        decision_log=sink if decision_log is not None else None,
    ) as sidecar:
        yield sidecar.client, sidecar


def _open_decision_log(target: str | None) -> IO[str] | None:
    if target is None:
        return None
    if target == "-":
        return sys.stderr
    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        return open(target, "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise ConfigError(f"--decision-log {target}: {exc}") from exc


async def _watch(
    source: PolicySource, sidecar: EmbeddedOpa, gateway: PolicyGateway, audit: AuditLog, tracker: RevisionTracker
) -> None:
    """Reload the sidecar when the policy file changes; an invalid edit keeps the old policy."""
    while True:
        await anyio.sleep(RELOAD_POLL_SECONDS)
        if not source.changed():
            continue
        try:
            bundles = source.build()
            await sidecar.reload(bundles)
        except PolicySourceError as exc:
            for problem in exc.problems:
                log.error("policy edit rejected, the previous policy stays in force: %s", problem)
            audit.write("reload", ok=False, errors=[str(p) for p in exc.problems])
            continue
        except RegogateError as exc:
            log.error("reload failed, the previous policy stays in force: %s", exc)
            audit.write("reload", ok=False, errors=[str(exc)])
            continue
        if source.policy is not None:
            gateway.counter_reads = counter_reads(source.policy)
        log.warning("policy reloaded: revision %s", source.revision)
        revisions = await tracker.refresh()
        audit.write("reload", ok=True, revision=source.revision, revisions=revisions)


async def serve(config: RunConfig) -> int:
    """Run the proxy until the client or the upstream ends; returns the exit status."""
    clock = SystemClock()
    workdir = Path(tempfile.mkdtemp(prefix="regogate-"))
    os.chmod(workdir, 0o700)
    audit = RevisionAudit(config.audit_log, clock, log_args=config.log_args)
    decision_log: IO[str] | None = None
    try:
        extra: list[Path] = []
        if config.decision_log is not None:
            # OPA logs each decision's input verbatim: mask the arguments as the audit log does.
            write_bundle(mask_bundle(config.log_args), workdir / "mask")
            extra.append(workdir / "mask")
        source = PolicySource(config, workdir, extra=extra)
        bundles = source.build()
        decision_log = _open_decision_log(config.decision_log)
        async with AsyncExitStack() as stack:
            store = open_store(config.state, config.state_prefix)
            stack.push_async_callback(store.aclose)
            if isinstance(store, RedisStore):
                try:
                    await store.ping()
                except StateError as exc:
                    # Serving anyway: calls that need no counter go on, and Redis coming back is picked up.
                    log.error("%s; calls that need a counter are denied until it answers", exc)
            client, sidecar = await stack.enter_async_context(_opa(config, bundles, decision_log))
            tracker = RevisionTracker(client, audit)
            revisions = await tracker.refresh()
            if config.fail_mode == "open":
                log.warning("--fail-mode open: calls are ALLOWED whenever OPA fails")
            if config.state_fail_mode == "open":
                log.warning("--state-fail-mode open: calls are admitted UNCOUNTED whenever the state store fails")
            settings = GateSettings(
                server_id=source.server_id,
                decision_path=config.opa_path,
                fail_mode=config.fail_mode,
                state_fail_mode=config.state_fail_mode,
                dry_run=config.dry_run,
            )
            reads = counter_reads(source.policy) if source.policy else {}
            gateway = PolicyGateway(client, store, clock, audit, settings, counter_reads=reads)
            try:
                opa_version = await client.version()
            except RegogateError:
                opa_version = "unknown"
            audit.write(
                "start",
                policy=str(config.policy),
                server_id=source.server_id,
                revision=source.revision,
                revisions=revisions,
                opa=config.opa_url or "embedded",
                opa_version=opa_version,
                state=config.state,
                fail_mode=config.fail_mode,
                state_fail_mode=config.state_fail_mode,
                dry_run=config.dry_run,
                upstream=list(config.upstream),
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(tracker.run)
                if sidecar is not None:
                    tg.start_soon(_watch, source, sidecar, gateway, audit, tracker)
                status = await run_relay(config.upstream, gateway, deny_prefix=config.deny_prefix)
                tg.cancel_scope.cancel()
            audit.write("shutdown", status=status)
            return status
    finally:
        audit.close()
        if decision_log is not None and decision_log is not sys.stderr:
            decision_log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    """Entry point of ``regogate run``."""
    config = parse_args(argv)
    try:
        return anyio.run(serve, config)
    except PolicySourceError as exc:
        sys.stderr.write(f"{exc}\nregogate: the policy is not valid; nothing was started\n")
        return EXIT_CONFIG
    except RegogateError as exc:
        sys.stderr.write(f"regogate: {exc}\n")
        return EXIT_CONFIG
