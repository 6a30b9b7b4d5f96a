"""``regogate status``: per server id, every rate-limit counter (tool, window, use, limit, reset) and pending approval.

The counters a policy declares are read from the store regogate run counts in, and the approvals
waiting for a person from the same store. With ``-c`` one policy is shown; without, every server
id in the state directory whose audit log recorded a start (the policy and store it ran with come
from its last ``start`` event). ``--json`` prints one object a line: ``"kind": "counter"`` or
``"kind": "approval"`` (README, "Status").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Final

import anyio

from regogate.converters import Policy, Rule, load_policy
from regogate.core import AUDIT_FILE, WILDCARD, ConfigError, RegogateError, state_dir
from regogate.proxy.approval import MemoryApprovalStore, open_approval_store
from regogate.proxy.cli._state_flags import DEFAULT_STATE, add_state_flags
from regogate.proxy.cli._usage import Commands
from regogate.proxy.state import WINDOW_SECONDS, ServerCounters, Window, default_state_spec, open_store, window_start

#: Only the tail of an audit log is searched for its last start event.
AUDIT_TAIL_BYTES: Final = 4 * 1024 * 1024
#: The key segment before a caller's id in a ``per: principal`` counter.
PRINCIPAL_KEY: Final = "principal"
#: The principal column of a ``per: principal`` limit nobody has used in the current window.
NO_CALLER: Final = "(nobody yet)"


@dataclass(frozen=True)
class Counter:
    """One counter of one server id, as ``status`` shows it."""

    server_id: str
    tool: str
    rule: str
    key: str
    window: Window
    used: float
    limit: float | None
    resets_at: str
    source: str
    principal: str | None = None
    """Whose counter it is, for a ``per: principal`` limit (``None``: one counter for every caller)."""


@dataclass(frozen=True)
class Pending:
    """One approval of one server id that waits for a person's answer."""

    server_id: str
    id: str
    tool: str
    rule: str
    message: str
    asked_by: str | None
    client: str | None
    asked_at: str
    expires_at: str


@dataclass(frozen=True)
class _Server:
    server_id: str
    policy: Path
    state: str
    prefix: str


def add_parsers(commands: Commands) -> None:
    """Add ``status``."""
    status = commands.add_parser(
        "status",
        help="show every rate-limit counter (tool, window, used, limit, reset) and every pending approval",
        description=(
            "Show every counter a policy declares, as the store regogate run counts in holds it now, and the "
            "approvals waiting for a person in that store. With -c, that policy; without, every server id whose "
            "audit log in the state directory records a start."
        ),
        epilog=(
            "examples:\n  regogate status -c policies/python.yaml --state sqlite:///var/lib/regogate/state.db\n"
            "  regogate status --json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("-c", "--config", metavar="POLICY", help="a YAML policy (default: those of the audit logs)")
    status.add_argument("--server-id", metavar="ID", help="the server id with -c (default: the file name)")
    status.add_argument(
        "--json", action="store_true", help='print JSON lines, one counter or approval each ("kind" says which)'
    )
    add_state_flags(status)
    status.set_defaults(handler=run)


def _own_limit(rule: Rule) -> float | None:
    """The limit a counter rule sets on its own counter (``lte N``, or ``lt N`` meaning N - 1)."""
    if rule.counter is None:
        return None
    own = (rule.scope, rule.counter.name)
    bounds = [
        float(c.value) if c.op == "lte" else float(c.value) - 1
        for c in rule.conditions
        if c.counter == own and c.op in ("lte", "lt") and isinstance(c.value, int | float)
    ]
    return min(bounds) if bounds else None


def _declared(policy: Policy) -> Iterator[tuple[Rule, str, Window, float | None]]:
    for rule in policy.rules:
        if rule.counter is not None:  # a rate_limit shorthand has its _rate_<window> counter too
            yield rule, f"{rule.scope}/{rule.counter.name}", rule.counter.window, _own_limit(rule)


def _last_start(audit: Path) -> dict[str, object] | None:
    try:
        with audit.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - AUDIT_TAIL_BYTES))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if '"start"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "start":
            return event
    return None


def _servers(args: argparse.Namespace) -> list[_Server]:
    if args.config:
        policy = load_policy(args.config, server_id=args.server_id)
        state = args.state or default_state_spec()
        return [_Server(policy.server_id, Path(args.config), state, args.state_prefix)]
    root = state_dir(args.state_dir)
    found = []
    for audit in sorted(root.glob(f"*/{AUDIT_FILE}")):
        start = _last_start(audit)
        if start is None or not isinstance(start.get("policy"), str) or not isinstance(start.get("server_id"), str):
            continue
        state = start.get("state") if args.state == DEFAULT_STATE else args.state
        prefix = start.get("state_prefix", args.state_prefix)
        found.append(
            _Server(
                str(start["server_id"]),
                Path(str(start["policy"])),
                str(state or default_state_spec()),
                str(prefix) if isinstance(prefix, str) else "",
            )
        )
    if not found:
        raise ConfigError(f"no audit log with a start event under {root}; pass -c POLICY (and --state STORE)")
    return found


async def counters(server: _Server, now: float) -> list[Counter]:
    """The counters ``server``'s policy declares, read from its store.

    Raises:
        RegogateError: the policy is invalid, or the store cannot be read.
    """
    policy = load_policy(server.policy, server_id=server.server_id)
    store = ServerCounters(open_store(server.state, server.prefix), server.server_id)
    try:
        out = []
        for rule, key, window, limit in _declared(policy):
            resets = window_start(window, now) + WINDOW_SECONDS[window]
            row = Counter(
                server_id=server.server_id,
                tool="* (every call)" if rule.tool == WILDCARD else rule.tool,
                rule=rule.name,
                key=key,
                window=window,
                used=0.0,
                limit=limit,
                resets_at=_utc(resets),
                source=f"{policy.source}:{rule.mark.line}",
            )
            if not rule.per_principal:
                out.append(replace(row, used=await store.current(key, window, now)))
                continue
            # One counter per caller (converters/_rego.py): <key>/principal/<id>.
            found = await store.current_under(f"{key}/{PRINCIPAL_KEY}/", window, now)
            for counted, used in sorted(found.items()):
                principal = counted[len(key) + len(PRINCIPAL_KEY) + 2 :]
                out.append(replace(row, key=counted, used=used, principal=principal))
            if not found:
                out.append(replace(row, principal=NO_CALLER))
        return out
    finally:
        await store.aclose()


async def pending(server: _Server, now: float) -> list[Pending] | None:
    """The approvals of ``server`` waiting for an answer, oldest first; ``None`` for a memory store.

    Raises:
        RegogateError: the store cannot be read.
    """
    store = open_approval_store(server.state, server.prefix)
    try:
        if isinstance(store, MemoryApprovalStore):
            return None
        return [
            Pending(
                server_id=a.server_id,
                id=a.id,
                tool=a.tool,
                rule=a.rule,
                message=a.message,
                asked_by=a.asked_by,
                client=a.client,
                asked_at=_utc(a.created),
                expires_at=_utc(a.expires),
            )
            for a in await store.list()
            if a.server_id == server.server_id and a.effective_status(now) == "pending"
        ]
    finally:
        await store.aclose()


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _table(rows: list[Counter]) -> str:
    head: tuple[str, ...] = ("TOOL", "WINDOW", "USED", "LIMIT", "RESETS (UTC)", "RULE")
    cells: list[tuple[str, ...]] = [
        (c.tool, c.window, f"{c.used:g}", "-" if c.limit is None else f"{c.limit:g}", c.resets_at, c.rule) for c in rows
    ]
    if any(c.principal is not None for c in rows):  # a per-principal limit: say whose counter each row is
        head += ("PRINCIPAL",)
        cells = [(*cell, c.principal or "(all callers)") for cell, c in zip(cells, rows, strict=True)]
    return _columns(head, cells)


def _approvals_table(rows: list[Pending]) -> str:
    head = ("APPROVAL", "TOOL", "ASKED BY", "SINCE (UTC)", "EXPIRES (UTC)", "RULE")
    cells = [
        (p.id, p.tool, (p.asked_by or "-") + (f" via {p.client}" if p.client else ""), p.asked_at, p.expires_at, p.rule)
        for p in rows
    ]
    return _columns(head, cells)


def _columns(head: tuple[str, ...], cells: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in (head, *cells)) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in (head, *cells))


def run(args: argparse.Namespace) -> int:
    """Print the counters and pending approvals; exit 1 when a server's policy or store cannot be read."""
    now = time.time()
    failed = False
    for server in _servers(args):
        try:
            rows = anyio.run(counters, server, now)
            waiting = anyio.run(pending, server, now)
        except RegogateError as exc:
            sys.stderr.write(f"regogate status: server id {server.server_id}: {exc}\n")
            failed = True
            continue
        if args.json:
            lines = [{"kind": "counter", **asdict(c)} for c in rows]
            lines += [{"kind": "approval", **asdict(p)} for p in waiting or []]
            sys.stdout.write("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
            continue
        store = server.state.split("@")[-1] if "@" in server.state else server.state
        sys.stdout.write(f"server id {server.server_id} ({server.policy}, store {store}):\n")
        if server.state == "memory":
            sys.stdout.write("  (a memory store lives inside each regogate process: these are not its counters)\n")
        sys.stdout.write((_table(rows) if rows else "  the policy declares no counters") + "\n")
        if waiting:
            sys.stdout.write(f"pending approvals ({len(waiting)}; answer with regogate approvals approve|deny ID):\n")
            sys.stdout.write(_approvals_table(waiting) + "\n")
        elif waiting is not None:
            sys.stdout.write("  no approvals waiting\n")
    return 1 if failed else 0
