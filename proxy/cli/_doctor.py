"""``regogate doctor``: is everything regogate needs here? OPA, the state store, a policy, the audit path.

Each check prints one line (``ok``, ``warn`` or ``FAIL``) with what it found; the exit status is 0
only when nothing failed. At the end it prints a client config snippet that works on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import anyio

from regogate.core import ConfigError, PolicySourceError, RegogateError, audit_log_path
from regogate.proxy.cli._opa_eval import opa_eval, opa_version
from regogate.proxy.cli._policy_bundles import policy_bundles
from regogate.proxy.cli._state_flags import add_state_flags, open_state
from regogate.proxy.cli._usage import Commands
from regogate.proxy.policy import (
    DEFAULT_DECISION_PATH,
    MIN_OPA_VERSION,
    OPA_VERSION,
    check_probe_result,
    find_opa,
    how_to_get_opa,
    parse_opa_version,
    probe_input,
)
from regogate.proxy.state import Reservation, Ticket, default_state_spec

Level = Literal["ok", "warn", "FAIL"]
#: The key the store check reserves and rolls back; it never collides with a policy's ``<scope>/<counter>``.
PROBE_KEY: Final = "regogate.doctor/probe"


@dataclass
class _Report:
    lines: list[str] = field(default_factory=list)
    failed: bool = False

    def add(self, level: Level, what: str, detail: str) -> None:
        self.failed = self.failed or level == "FAIL"
        self.lines.append(f"{level:<4}  {what}: {detail}")
        sys.stdout.write(self.lines[-1] + "\n")


def add_parsers(commands: Commands) -> None:
    """Add ``doctor``."""
    doctor = commands.add_parser(
        "doctor",
        help="check OPA, the state store, a policy and the audit path; print a client config",
        description=(
            "Check what regogate needs: OPA (found, version, the minimum supported), the state store "
            "(reachable, writable), a policy (valid, and its decision path answers a probe), the audit log's "
            "directory; then print an MCP client config snippet. Exit status 0 when nothing failed."
        ),
        epilog="example: regogate doctor -c policies/python.yaml --state sqlite:///var/lib/regogate/state.db",
    )
    doctor.add_argument("-c", "--config", metavar="POLICY", help="a YAML policy or a Rego directory to check")
    doctor.add_argument("--server-id", metavar="ID", help="the server id (default: the policy file's name)")
    doctor.add_argument("--opa-bin", metavar="FILE", help="the opa binary (default: $REGOGATE_OPA, PATH, cache)")
    doctor.add_argument(
        "--opa-path", default=DEFAULT_DECISION_PATH, metavar="PATH", help="the decision path (default: %(default)s)"
    )
    doctor.add_argument("--audit-log", metavar="FILE", help="the audit log regogate run will write")
    add_state_flags(doctor)
    doctor.set_defaults(handler=run)


async def _check_opa(report: _Report, explicit: str | None) -> str | None:
    try:
        opa_bin = find_opa(explicit)
    except ConfigError as exc:
        report.add("FAIL", "OPA", str(exc).split("; get OPA")[0])
        sys.stdout.write(how_to_get_opa() + "\n")
        return None
    try:
        version = parse_opa_version(await opa_version(opa_bin))
    except ConfigError as exc:
        report.add("FAIL", "OPA", f"{opa_bin}: {exc}")
        return None
    minimum = ".".join(map(str, MIN_OPA_VERSION))
    if version is None:
        report.add("warn", "OPA", f"{opa_bin}: cannot read its version (minimum supported v{minimum})")
    elif version < MIN_OPA_VERSION:
        shown = ".".join(map(str, version))
        report.add("FAIL", "OPA", f"{opa_bin} is v{shown}; regogate needs v{minimum} or newer (tested: v{OPA_VERSION})")
        return None
    else:
        shown = ".".join(map(str, version))
        report.add("ok", "OPA", f"{opa_bin} v{shown} (minimum supported v{minimum}, tested v{OPA_VERSION})")
    return opa_bin


async def _check_store(report: _Report, args: argparse.Namespace, server_id: str) -> None:
    spec = args.state or default_state_spec()
    shown = spec.split("@")[-1] if "@" in spec else spec
    try:
        store = open_state(args, server_id)
    except RegogateError as exc:
        report.add("FAIL", "state store", str(exc))
        return
    try:
        outcome = await store.reserve([Reservation(PROBE_KEY, None, "minute", 1)], time.time())
        if isinstance(outcome, Ticket):  # a limit of None never refuses
            await store.rollback(outcome)
    except RegogateError as exc:
        report.add("FAIL", "state store", f"{shown}: {exc}")
        return
    finally:
        await store.aclose()
    note = " (counters last only as long as each regogate process)" if args.state == "memory" else ""
    report.add("ok", "state store", f"{shown}: reachable and writable{note}")


async def _check_policy(report: _Report, args: argparse.Namespace, opa_bin: str | None) -> str | None:
    workdir = Path(tempfile.mkdtemp(prefix="regogate-doctor-"))
    try:
        loaded = policy_bundles(Path(args.config), args.server_id, workdir)
        detail = f"{args.config}: valid (server id {loaded.server_id})"
        if opa_bin is None:
            report.add("warn", "policy", detail + "; not evaluated without OPA")
            return loaded.server_id
        query = "data." + args.opa_path.strip("/").replace("/", ".")
        evaluation = await opa_eval(opa_bin, loaded.bundles, query, probe_input(loaded.server_id))
        check_probe_result(evaluation.value, path=args.opa_path, defined=evaluation.defined)
        report.add("ok", "policy", detail + f"; {query} answers a probe call with a well-formed decision")
        return loaded.server_id
    except PolicySourceError as exc:
        listed = "\n".join(f"      {problem}" for problem in exc.problems)
        report.add("FAIL", "policy", f"{len(exc.problems)} problem(s):\n{listed}")
    except RegogateError as exc:
        report.add("FAIL", "policy", str(exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return None


def _check_audit(report: _Report, args: argparse.Namespace, server_id: str) -> Path:
    path = Path(args.audit_log) if args.audit_log else audit_log_path(server_id, args.state_dir)
    directory = path.parent
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if path.exists() and not os.access(path, os.W_OK):
        report.add("FAIL", "audit log", f"{path} exists and is not writable")
    elif not os.access(existing, os.W_OK | os.X_OK):
        report.add("FAIL", "audit log", f"{path}: cannot create files under {existing}")
    else:
        report.add("ok", "audit log", f"{path} (written by regogate run; --audit-log none turns it off)")
    return path


def _snippet(args: argparse.Namespace, opa_bin: str | None, server_id: str) -> str:
    command = shutil.which("regogate") or str(Path(sys.argv[0]).resolve())
    policy = str(Path(args.config).resolve()) if args.config else "/path/to/policy.yaml"
    flags = ["-c", policy]
    if args.state not in (None, "memory"):
        flags += ["--state", args.state]
    entry: dict[str, object] = {"command": command, "args": [*flags, "--", "YOUR-MCP-SERVER", "ITS-ARGS"]}
    if opa_bin is not None:
        entry["env"] = {"REGOGATE_OPA": str(Path(opa_bin).resolve())}
    return json.dumps({"mcpServers": {server_id: entry}}, indent=2)


async def _doctor(args: argparse.Namespace) -> int:
    report = _Report()
    opa_bin = await _check_opa(report, args.opa_bin)
    server_id = "server"
    if args.config:
        server_id = await _check_policy(report, args, opa_bin) or server_id
    else:
        report.add("warn", "policy", "none given (-c POLICY checks one)")
    await _check_store(report, args, server_id)
    _check_audit(report, args, server_id)
    sys.stdout.write(
        "\nMCP client config (.mcp.json and the like; replace the server command):\n"
        + _snippet(args, opa_bin, server_id)
        + "\n"
    )
    sys.stdout.write("\nall checks passed\n" if not report.failed else "\nsome checks FAILED\n")
    return 1 if report.failed else 0


def run(args: argparse.Namespace) -> int:
    """Run every check."""
    return anyio.run(_doctor, args)
