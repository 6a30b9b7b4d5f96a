"""``regogate run``'s flags, parsed once into a frozen ``RunConfig``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

from regogate.core import LogArgs, StateError
from regogate.proxy.cli._state_flags import DEFAULT_STATE, add_state_flags
from regogate.proxy.cli._upstream_flags import add_upstream_flags, quiet_http_logs, read_upstream_flags
from regogate.proxy.cli._usage import UsageParser
from regogate.proxy.policy import DEFAULT_DECISION_PATH, DEFAULT_TIMEOUT, FailMode
from regogate.proxy.relay import DEFAULT_DENY_PREFIX, HttpTarget
from regogate.proxy.state import default_state_spec

__all__ = ["DEFAULT_STATE", "OPA_READY_TIMEOUT", "RunConfig", "build_parser", "parse_args", "read_config"]

#: How long an external OPA may take to activate its bundles (a first download from a bundle server).
OPA_READY_TIMEOUT: Final = 30.0

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
  MCP_AUTH='Bearer ...' regogate -c policies/github.yaml --upstream https://mcp.example.com/mcp \\
      --header-env Authorization=MCP_AUTH --principal team=payments
"""


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``regogate run``."""
    p = UsageParser(
        prog="regogate run",
        usage="regogate [run] -c POLICY [flags] (-- UPSTREAM_COMMAND [ARGS...] | --upstream URL)",
        description=(
            "Relay MCP over stdio to UPSTREAM_COMMAND, or to a Streamable HTTP server at URL; "
            "every tools/call is decided by OPA first."
        ),
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
    add_state_flags(p, keeps_state=True)
    p.add_argument(
        "--audit-log",
        metavar="FILE",
        help="JSON-lines audit events, rotated by size (default: STATE_DIR/<server id>/audit.jsonl; none: off)",
    )
    p.add_argument(
        "--bundle",
        dest="bundles",
        action="append",
        default=[],
        metavar="PATH",
        help="embedded OPA: also load this bundle (a directory or .tar.gz), e.g. regogate.extensions.* deny "
        "rules next to a converted policy; repeatable",
    )
    p.add_argument(
        "--log-args",
        choices=("hash", "none", "full"),
        default="hash",
        help=(
            "tool arguments in the audit log and OPA's decision log: a keyed hash (default; the key is "
            "$XDG_STATE_HOME/regogate/args-hash.key), nothing, or in clear"
        ),
    )
    p.add_argument(
        "--log-level",
        type=str.lower,
        choices=("debug", "info", "warn", "warning", "error"),
        default="warning",
        help="stderr log level (default: warning; warn is Intercept's spelling)",
    )
    p.add_argument(
        "--deny-prefix",
        default=DEFAULT_DENY_PREFIX,
        metavar="TEXT",
        help=f"prefix of denial texts (default: {DEFAULT_DENY_PREFIX!r})",
    )
    p.add_argument("--debug", action="store_true", help="on a failure, also print its traceback (for a bug report)")
    add_upstream_flags(p)
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
    """``None`` for the default path in the state directory, ``"none"`` for no audit log."""
    state_dir: str | None
    bundles: tuple[Path, ...]
    log_args: LogArgs
    deny_prefix: str
    upstream: tuple[str, ...]
    debug: bool = False
    target: HttpTarget | None = None
    """The remote server when ``--upstream URL`` was given (then ``upstream`` is empty)."""
    principal: Mapping[str, object] = field(default_factory=dict)
    """Who is calling: ``input.principal``."""
    #: ``state`` is the default store (no ``--state`` given): regogate says where it is at start.
    state_default: bool = False


def parse_args(argv: Sequence[str]) -> RunConfig:
    """Parse and check the flags; usage mistakes exit 2 with one line."""
    parser = build_parser()
    return read_config(parser, parser.parse_args(list(argv)))


def read_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """Check the parsed flags of ``build_parser`` (and of parsers built on it) and make the config."""
    upstream = list(args.upstream)
    if upstream and upstream[0] == "--":
        upstream = upstream[1:]
    target, principal = read_upstream_flags(parser, args, upstream)
    if args.opa_timeout <= 0:
        parser.error("--opa-timeout must be positive")
    if args.opa_ready_timeout <= 0:
        parser.error("--opa-ready-timeout must be positive")
    if args.bundles and args.opa_url:
        parser.error("--bundle is for the embedded OPA; an external OPA loads the bundles its config names")
    for bundle in args.bundles:
        if Path(bundle).is_dir() and not (Path(bundle) / ".manifest").is_file():
            parser.error(
                f"--bundle {bundle} has no .manifest: bundles loaded side by side must name their roots, "
                'e.g. {"roots": ["regogate/extensions/NAME"]}'
            )
    if args.decision_log and args.opa_url:
        parser.error("--decision-log is for the embedded OPA; an external OPA logs decisions as its config says")
    try:
        state = args.state or default_state_spec(args.state_dir)
    except StateError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        stream=sys.stderr,
        level="WARNING" if args.log_level == "warn" else args.log_level.upper(),
        format="regogate %(levelname)s %(name)s: %(message)s",
    )
    quiet_http_logs()
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
        state=state,
        state_prefix=args.state_prefix,
        audit_log=args.audit_log,
        state_dir=args.state_dir,
        bundles=tuple(Path(b) for b in args.bundles),
        log_args=cast(LogArgs, args.log_args),
        deny_prefix=args.deny_prefix,
        upstream=tuple(upstream),
        debug=args.debug,
        target=target,
        principal=principal,
        state_default=args.state is None,
    )
