"""``regogate scan``: list a server's tools and write a commented policy scaffold that validates.

Tools are grouped from their annotations, with the MCP spec's defaults for missing hints
(``readOnlyHint`` false, ``destructiveHint`` true, ``openWorldHint`` true):

- Destructive (not read-only, destructive): denied, to be reviewed (or ``require_approval``);
- Write (not read-only, not destructive, closed world): allowed within 30 calls an hour;
- Execute (not read-only, not destructive, open world): allowed within 10 calls an hour;
- Read (read-only): allowed; within 60 calls a minute when open world.

A tool with required arguments gets ``validate: {required_args: true}`` on its allow rule.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import anyio

from regogate.converters import parse_policy
from regogate.proxy.cli._server_tools import LIST_TIMEOUT, list_tools_of
from regogate.proxy.cli._upstream_flags import add_remote_flags, quiet_http_logs, read_remote_target
from regogate.proxy.cli._usage import Commands
from regogate.proxy.cli._validate import upstream_command

Group = Literal["Destructive", "Write", "Execute", "Read"]
GROUPS: Final[tuple[Group, ...]] = ("Destructive", "Write", "Execute", "Read")
_INTRO: Final[Mapping[Group, str]] = {
    "Destructive": "may destroy or overwrite data (the spec assumes so when a tool does not say): denied until "
    "reviewed; action: require_approval is the other choice",
    "Write": "change local state only: allowed within a budget",
    "Execute": "act on the world outside (run commands, call services): allowed within a tighter budget",
    "Read": "read-only: allowed; open-world reads within a budget",
}
_RATE: Final[Mapping[Group, str]] = {"Write": "30/hour", "Execute": "10/hour", "Read": "60/minute"}
_COMMENT_WIDTH: Final = 100
_MAX_DESCRIPTION_LINES: Final = 4
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True)
class _Tool:
    name: str
    description: str
    group: Group
    open_world: bool
    required: tuple[str, ...]
    optional: tuple[str, ...]


def _hint(annotations: Mapping[str, object], key: str, default: bool) -> bool:
    value = annotations.get(key)
    return value if isinstance(value, bool) else default


def _classify(entry: Mapping[str, object]) -> _Tool:
    raw = entry.get("annotations")
    annotations: Mapping[str, object] = raw if isinstance(raw, dict) else {}
    read_only = _hint(annotations, "readOnlyHint", False)
    open_world = _hint(annotations, "openWorldHint", True)
    group: Group
    if read_only:
        group = "Read"
    elif _hint(annotations, "destructiveHint", True):
        group = "Destructive"
    else:
        group = "Execute" if open_world else "Write"
    schema = entry.get("inputSchema")
    properties: Mapping[str, object] = {}
    required: list[str] = []
    if isinstance(schema, dict):
        if isinstance(schema.get("properties"), dict):
            properties = schema["properties"]
        if isinstance(schema.get("required"), list):
            required = [r for r in schema["required"] if isinstance(r, str)]
    description = entry.get("description")
    return _Tool(
        name=str(entry["name"]),
        description=_CONTROL.sub(" ", description).strip() if isinstance(description, str) else "",
        group=group,
        open_world=open_world,
        required=tuple(sorted(required)),
        optional=tuple(sorted(p for p in properties if p not in required)),
    )


def _comment(text: str, indent: str) -> list[str]:
    lines = textwrap.wrap(text, _COMMENT_WIDTH - len(indent) - 2) or [""]
    if len(lines) > _MAX_DESCRIPTION_LINES:
        lines = [*lines[: _MAX_DESCRIPTION_LINES - 1], lines[_MAX_DESCRIPTION_LINES - 1] + " ..."]
    return [f"{indent}# {line}".rstrip() for line in lines]


def _tool_block(tool: _Tool) -> list[str]:
    out = _comment(tool.description or "(no description)", "  ")
    if tool.required or tool.optional:
        arguments = [f"{a} (required)" for a in tool.required] + list(tool.optional)
        out += _comment("arguments: " + ", ".join(arguments), "  ")
    out.append(f"  {json.dumps(tool.name, ensure_ascii=False)}:")
    if tool.group == "Destructive":
        message = json.dumps(f"{tool.name} is destructive: blocked by policy until reviewed", ensure_ascii=False)
        out += ["    rules:", "      - action: deny", f"        on_deny: {message}"]
        return out
    rate = _RATE[tool.group] if tool.group != "Read" or tool.open_world else None
    if rate is None and not tool.required:
        out.append("    rules: []")
        return out
    out += ["    rules:", "      - action: allow"]
    if rate is not None:
        out.append(f"        rate_limit: {rate}")
    if tool.required:
        out.append("        validate: {required_args: true}")
    return out


def scaffold(entries: Sequence[Mapping[str, object]], command: Sequence[str]) -> str:
    """The commented YAML policy for ``entries`` (a server's tools/list), grouped and sorted by name.

    ``command`` names the server in comments: its command line, or ``--upstream URL`` (shown without secrets).
    """
    tools = sorted((_classify(e) for e in entries), key=lambda t: t.name)
    counts = {group: sum(1 for t in tools if t.group == group) for group in GROUPS}
    summary = ", ".join(f"{counts[g]} {g.lower()}" for g in GROUPS)
    lines = [
        f"# Policy scaffold written by regogate scan {_server_words(command)}",
        f"# {len(tools)} tools ({summary}), grouped by their annotations. Review every rule before use;",
        f"# `regogate validate -c THIS_FILE {_server_words(command)}` checks the tool names against the server again.",
        'version: "1"',
        f"description: {json.dumps('Policy for ' + ' '.join(command), ensure_ascii=False)}",
        "# Tools the server adds later are refused until they are listed here.",
        "default: deny",
    ]
    if not tools:
        return "\n".join([*lines, "tools: {}", ""])
    lines.append("tools:")
    for group in GROUPS:
        members = [t for t in tools if t.group == group]
        if not members:
            continue
        lines += ["", f"  # --- {group}: {_INTRO[group]}"]
        for tool in members:
            lines += _tool_block(tool)
    return "\n".join([*lines, ""])


def _server_words(command: Sequence[str]) -> str:
    return " ".join(command) if command[:1] == ["--upstream"] else "-- " + " ".join(command)


def add_parsers(commands: Commands) -> None:
    """Add ``scan``."""
    scan = commands.add_parser(
        "scan",
        help="list an MCP server's tools and write a policy scaffold",
        description=(
            "Start the MCP server COMMAND (or reach the Streamable HTTP server at --upstream URL), list every "
            "tool (all pages) and write a commented policy that validates: destructive tools denied, writes and "
            "open-world tools rate-limited, reads allowed, required arguments checked."
        ),
        epilog=(
            "examples:\n"
            "  regogate scan -o policies/filesystem.yaml -- npx -y @modelcontextprotocol/server-filesystem .\n"
            "  regogate scan -o policies/remote.yaml --upstream https://host/mcp --header-env Authorization=MCP_AUTH"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("-o", "--output", metavar="FILE", help="write the policy here (default: stdout)")
    scan.add_argument(
        "--timeout", type=float, default=LIST_TIMEOUT, metavar="SECONDS", help="how long the server may take to list"
    )
    add_remote_flags(scan)
    scan.add_argument("upstream", nargs=argparse.REMAINDER, help="-- the MCP server command")
    scan.set_defaults(handler=run, parser=scan)


def run(args: argparse.Namespace) -> int:
    """List the tools, write the scaffold, check that it validates."""
    command = upstream_command(args)
    if not command and not args.upstream_url:
        args.parser.error("no MCP server command given after -- (or --upstream URL)")
    target = read_remote_target(args.parser, args, command)
    if target is not None:
        quiet_http_logs()
    tools = anyio.run(lambda: list_tools_of(command, target, timeout=args.timeout))
    text = scaffold(tools, ["--upstream", target.display] if target is not None else command)
    # The scaffold must be a policy regogate accepts; this raises (a bug) if it is not.
    parse_policy(text, source=args.output or "scan", server_id="scan")
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    sys.stderr.write(f"regogate scan: wrote {out} ({len(tools)} tools); review it, then regogate -c {out} -- ...\n")
    return 0
