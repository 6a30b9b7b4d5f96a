"""``regogate approvals``: list, show, approve and deny the approvals that calls wait for, out of band."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import anyio

from regogate.core import ConfigError, StateError
from regogate.proxy.approval import Approval, ApprovalError, ApprovalStore, MemoryApprovalStore, open_approval_store
from regogate.proxy.cli._state_flags import add_state_flags
from regogate.proxy.cli._usage import EXIT_USAGE, UsageParser
from regogate.proxy.state import default_state_spec

__all__ = ["main"]

EXIT_REFUSED = 1

EPILOG = """\
examples:
  regogate approvals list
  regogate approvals show apr-3k2q7x6bq4mfa5vd
  regogate approvals approve apr-3k2q7x6bq4mfa5vd --reason "checked the branch"
  regogate approvals deny apr-3k2q7x6bq4mfa5vd --state redis://127.0.0.1:6379/0
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``regogate approvals``."""
    parser = UsageParser(
        prog="regogate approvals",
        description="Answer the approvals that require_approval rules ask for, from another terminal or machine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", parser_class=UsageParser, metavar="ACTION")
    listing = actions.add_parser("list", help="the approvals waiting for an answer (--all: every one kept)")
    listing.add_argument("--all", action="store_true", help="also answered, used and lapsed approvals")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = actions.add_parser("show", help="one approval: the call, its arguments, the rule and its state")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the approval as JSON")
    for name, verb in (("approve", "let the call run once"), ("deny", "refuse the call")):
        answer = actions.add_parser(name, help=f"answer a pending approval: {verb}")
        answer.add_argument("id", metavar="ID")
        answer.add_argument("--reason", metavar="TEXT", help="recorded with the answer (and given to OPA)")
        answer.add_argument("--by", metavar="NAME", help="who answers (default: your user name)")
    for command in (listing, show, *(actions.choices[n] for n in ("approve", "deny"))):
        add_state_flags(command)
    return parser


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _describe(approval: Approval, now: float) -> str:
    lines = [
        f"approval  {approval.id}",
        f"status    {approval.effective_status(now)}",
        f"server    {approval.server_id}",
        f"tool      {approval.tool}",
        f"rule      {approval.rule}: {approval.message}",
        f"asked     {_when(approval.created)} by {approval.asked_by or '-'}",
        f"lapses    {_when(approval.expires)}",
    ]
    if approval.decided_by is not None:
        lines.append(f"answered  {_when(approval.decided_at)} by {approval.decided_by} via {approval.via}")
    if approval.reason:
        lines.append(f"reason    {approval.reason}")
    lines.append(f"arguments ({approval.size} bytes, {approval.digest}):")
    lines.extend("  " + line for line in approval.preview.splitlines())
    return "\n".join(lines) + "\n"


async def _act(args: argparse.Namespace) -> int:
    spec = args.state or default_state_spec(args.state_dir)
    store: ApprovalStore = open_approval_store(spec, args.state_prefix)
    if isinstance(store, MemoryApprovalStore):
        raise ConfigError(
            "approvals kept in memory belong to one regogate process; name the --state file or Redis it uses"
        )
    now = time.time()
    try:
        if args.action == "list":
            shown = [a for a in await store.list() if args.all or a.effective_status(now) == "pending"]
            for approval in shown:
                if args.json:
                    sys.stdout.write(
                        json.dumps({**approval.to_json(), "status": approval.effective_status(now)}) + "\n"
                    )
                else:
                    sys.stdout.write(
                        f"{approval.id}  {approval.effective_status(now):8}  {approval.server_id}/{approval.tool}  "
                        f"by {approval.asked_by or '-'}  lapses {_when(approval.expires)}  {approval.rule}\n"
                    )
            if not shown and not args.json:
                sys.stdout.write("no approvals waiting\n" if not args.all else "no approvals kept\n")
            return 0
        if args.action == "show":
            found = await store.get(args.id)
            if found is None:
                raise ApprovalError(f"no approval {args.id!r} (see `regogate approvals list`)")
            if args.json:
                sys.stdout.write(json.dumps({**found.to_json(), "status": found.effective_status(now)}) + "\n")
            else:
                sys.stdout.write(_describe(found, now))
            return 0
        approve = args.action == "approve"
        by = args.by or getpass.getuser()
        answered = await store.answer(args.id, approve=approve, by=by, reason=args.reason, via="cli", now=now)
        if approve:
            sys.stdout.write(
                f"approved {answered.id}: the same call to {answered.server_id}/{answered.tool} with the same "
                f"arguments may run once until {_when(answered.expires)}\n"
            )
        else:
            sys.stdout.write(f"denied {answered.id}: {answered.server_id}/{answered.tool} will not run\n")
        return 0
    finally:
        await store.aclose()


def main(argv: Sequence[str]) -> int:
    """Run ``regogate approvals``; returns the exit status (0 done, 1 refused, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.action is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return anyio.run(_act, args)
    except (ApprovalError, ConfigError, StateError) as exc:
        sys.stderr.write(f"regogate approvals: {exc}\n")
        return EXIT_REFUSED
