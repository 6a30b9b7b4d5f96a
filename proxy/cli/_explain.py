"""``regogate explain``: what the policy decides for one call, and why, evaluated by the real OPA."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from regogate.converters import Policy
from regogate.core import ConfigError, DecisionError
from regogate.proxy.cli._json_text import json_object
from regogate.proxy.cli._opa_eval import opa_eval
from regogate.proxy.cli._policy_bundles import policy_bundles
from regogate.proxy.cli._server_tools import list_tools_of
from regogate.proxy.cli._state_flags import add_state_flags, open_state
from regogate.proxy.cli._upstream_flags import add_upstream_flags, quiet_http_logs, read_upstream_flags
from regogate.proxy.cli._usage import Commands
from regogate.proxy.cli._validate import upstream_command
from regogate.proxy.policy import (
    DEFAULT_DECISION_PATH,
    CallInput,
    CounterRead,
    Decision,
    counter_reads,
    find_opa,
    parse_decision,
)
from regogate.proxy.relay import HttpTarget
from regogate.proxy.state import WINDOW_SECONDS, RateLimitStore, window_start


def add_parsers(commands: Commands) -> None:
    """Add ``explain``."""
    explain = commands.add_parser(
        "explain",
        help="show what the policy decides for one call, with every reason and its source line",
        description=(
            "Evaluate one tools/call with the real OPA: the decision, every reason with the rule's YAML source "
            "line, the rate limits declared with the counters' current values, and the exact OPA input. "
            "Nothing is counted. Given the server (-- COMMAND or --upstream URL), the tool's inputSchema and "
            "annotations come from its tools/list, as in a session; the caller is who regogate run would name."
        ),
        epilog=(
            "examples:\n"
            "  regogate explain -c policies/github.yaml --tool push_files --args '{\"force\": true}'\n"
            "  regogate explain -c policies/python.yaml --tool uv-run --args '{}' --explain -- python-mcp-server\n"
            '  regogate explain -c remote.yaml --tool search --args \'{"q": "x"}\' --upstream https://host/mcp'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("-c", "--config", required=True, metavar="POLICY", help="a YAML policy or a Rego directory")
    explain.add_argument("--tool", required=True, metavar="NAME", help="the tool's name")
    explain.add_argument("--args", default="{}", metavar="JSON", help="the call's arguments as a JSON object")
    explain.add_argument("--server-id", metavar="ID", help="the server id (default: the policy file's name)")
    explain.add_argument(
        "--opa-path", default=DEFAULT_DECISION_PATH, metavar="PATH", help="the decision path (default: %(default)s)"
    )
    explain.add_argument("--opa-bin", metavar="FILE", help="the opa binary (default: $REGOGATE_OPA, PATH, cache)")
    explain.add_argument(
        "--input-schema", metavar="JSON", help="the tool's inputSchema (for validate rules), when no server is given"
    )
    explain.add_argument("--annotations", metavar="JSON", help="the tool's annotations, when no server is given")
    explain.add_argument(
        "upstream",
        nargs=argparse.REMAINDER,
        help="optional: -- the MCP server command, to take the tool's inputSchema and annotations from its tools/list",
    )
    explain.add_argument("--explain", action="store_true", help="also print OPA's own explanation (--explain full)")
    explain.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_state_flags(explain)
    add_upstream_flags(explain)
    explain.set_defaults(handler=run, parser=explain)


@dataclass(frozen=True)
class _Limit:
    key: str
    limit: float | None
    window: str
    cost: float
    rule: str
    current: float
    resets_at: int

    @property
    def admits(self) -> bool:
        return self.limit is None or self.current + self.cost <= self.limit


def _counter_reads(policy: Policy | None, tool: str) -> tuple[CounterRead, ...]:
    if policy is None:
        return ()
    reads = counter_reads(policy)
    return (*reads.get(tool, ()), *reads.get("*", ()))


def _sources(policy: Policy | None, rule: str) -> list[str]:
    if policy is None:
        return []
    return [f"{policy.source}:{r.mark.line}" for r in policy.rules if r.name == rule]


async def _limits(store: RateLimitStore, decision: Decision, now: float) -> list[_Limit]:
    limits = []
    for declared in decision.rate_limits:
        current = await store.current(declared.key, declared.window, now)
        resets = window_start(declared.window, now) + WINDOW_SECONDS[declared.window]
        limits.append(
            _Limit(declared.key, declared.limit, declared.window, declared.cost, declared.rule, current, resets)
        )
    return limits


def _stamp(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


async def _tool_entry(
    args: argparse.Namespace, target: HttpTarget | None
) -> tuple[dict[str, object] | None, dict[str, object] | None]:
    """The tool's inputSchema and annotations: from the server when one is given, else from the flags."""
    command = upstream_command(args)
    if not command and target is None:
        given = None if args.input_schema is None else json_object(args.input_schema, "--input-schema")
        if given is None:
            sys.stderr.write(
                f"regogate explain: no server given, so {args.tool}'s inputSchema is unknown (as for a tool the "
                "server does not list): validate rules deny; pass -- COMMAND, --upstream URL or --input-schema JSON\n"
            )
        return given, None if args.annotations is None else json_object(args.annotations, "--annotations")
    for entry in await list_tools_of(command, target):
        if entry.get("name") == args.tool:
            schema, annotations = entry.get("inputSchema"), entry.get("annotations")
            return (
                schema if isinstance(schema, dict) else None,
                annotations if isinstance(annotations, dict) else None,
            )
    raise ConfigError(f"the server does not offer a tool named {args.tool!r}")


async def _explain(
    args: argparse.Namespace,
    arguments: dict[str, object],
    workdir: Path,
    target: HttpTarget | None,
    principal: dict[str, object],
) -> int:
    loaded = policy_bundles(Path(args.config), args.server_id, workdir)
    opa_bin = find_opa(args.opa_bin)
    schema, annotations = await _tool_entry(args, target)
    now = time.time()
    store = open_state(args, loaded.server_id)
    try:
        state: dict[str, dict[str, float]] = {}
        for read in _counter_reads(loaded.policy, args.tool):
            value = await store.current(f"{read.scope}/{read.counter}", read.window, now)
            state.setdefault(read.scope, {})[read.counter] = value
        document = CallInput(
            server_id=loaded.server_id,
            tool_name=args.tool,
            arguments=arguments,
            request_id="regogate-explain",
            now=now,
            client={"name": "regogate explain"},
            input_schema=schema,
            annotations=annotations,
            state=state,
            principal=principal,
        ).to_document()
        query = "data." + args.opa_path.strip("/").replace("/", ".")
        evaluation = await opa_eval(opa_bin, loaded.bundles, query, document, explain=args.explain)
        if not evaluation.defined:
            raise ConfigError(f"{query} is undefined for this input; check --opa-path and the policy's package")
        try:
            decision = parse_decision(evaluation.value, kind="tools/call")
        except DecisionError as exc:
            raise ConfigError(f"{query} broke the decision contract: {exc}") from exc
        limits = await _limits(store, decision, now) if decision.allow else []
    finally:
        await store.aclose()
    allowed = decision.allow and all(limit.admits for limit in limits)
    reasons = [
        {"rule": r.rule, "message": r.message, "source": _sources(loaded.policy, r.rule)} for r in decision.reasons
    ]
    if args.json:
        record = {
            "allow": allowed,
            "policy_allows": decision.allow,
            "reasons": reasons,
            "rate_limits": [
                {**vars(limit), "resets_at": _stamp(limit.resets_at), "admits": limit.admits} for limit in limits
            ],
            "input": document,
            "result": evaluation.value,
            "opa": opa_bin,
        }
        if args.explain:
            record["explanation"] = evaluation.explanation
        sys.stdout.write(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = [f"decision: {'ALLOW' if allowed else 'DENY'} {args.tool} (server id {loaded.server_id}, {query})"]
    if decision.reasons:
        out.append(f"reasons ({len(decision.reasons)}, the first is what the model reads):")
        for index, reason in enumerate(reasons, 1):
            where = f"  [{', '.join(reason['source'])}]" if reason["source"] else ""
            out.append(f"  {index}. {reason['rule']}: {reason['message']}{where}")
    elif not decision.allow:
        out.append("reasons: none given (the default deny message applies)")
    if limits:
        out.append("rate limits declared (not counted by explain):")
        for limit in limits:
            bound = "no limit" if limit.limit is None else f"{limit.limit:g}"
            verdict = "admits" if limit.admits else "REFUSES"
            sources = ", ".join(_sources(loaded.policy, limit.rule))
            out.append(
                f"  {limit.rule}: {limit.key} per {limit.window}: used {limit.current:g} + {limit.cost:g} of {bound}, "
                f"resets {_stamp(limit.resets_at)}: {verdict}" + (f"  [{sources}]" if sources else "")
            )
    elif decision.allow:
        out.append("rate limits declared: none")
    out += ["OPA input:", json.dumps(document, indent=2, ensure_ascii=False)]
    if args.explain:
        out += ["OPA's explanation (opa eval --explain full):", evaluation.explanation.rstrip()]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Explain one call."""
    arguments = {} if args.args is None else json_object(args.args, "--args")
    command = upstream_command(args)
    target, principal = read_upstream_flags(args.parser, args, command, required=False)
    if target is not None:
        quiet_http_logs()
    workdir = Path(tempfile.mkdtemp(prefix="regogate-explain-"))
    try:
        return anyio.run(_explain, args, arguments, workdir, target, principal)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
