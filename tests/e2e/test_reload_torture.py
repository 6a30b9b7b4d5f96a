"""Reload torture: a policy rewritten in place, slowly, again and again, while calls keep coming.

Each rewrite truncates the file and writes it in two parts with a pause longer than the reload poll
between them. The first part alone (``version`` + ``default: allow``) is a valid policy that allows
everything; both complete versions deny ``conda``. No call may be decided by a partial file: every
``conda`` call is denied, and every reload the audit log records is of a complete version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

from regogate.converters import parse_policy, policy_bundle
from tests.e2e.harness import STANDIN, gated_session, text

pytestmark = pytest.mark.anyio

VERSIONS = [
    'version: "1"\ndefault: allow\ntools:\n  conda:\n    rules:\n      - action: deny\n        on_deny: "conda is blocked (A)"\n',
    'version: "1"\ndefault: allow\ntools:\n  conda:\n    rules:\n      - action: deny\n        on_deny: "conda is blocked (B)"\n',
]
#: Where a rewrite pauses: the prefix before it is a complete, allow-everything policy.
CUT = len('version: "1"\ndefault: allow\n')
ROUNDS = 8
#: Longer than the reload poll (0.5 s), so a poll always lands inside a half-written file.
PAUSE = 0.7
#: Time for a complete version to be loaded before the next rewrite starts.
SETTLE = 1.2
SESSION_TIMEOUT = 120


def _revision(path: Path, content: str) -> str:
    policy = parse_policy(content, source=path.name, server_id="torture")
    return policy_bundle(policy, content).revision


async def test_no_call_is_decided_by_a_half_written_policy(tmp_path: Path) -> None:
    policy, audit = tmp_path / "torture.yaml", tmp_path / "audit.jsonl"
    policy.write_text(VERSIONS[0], encoding="utf-8")
    complete = {_revision(policy, v) for v in VERSIONS}
    outcomes: list[tuple[bool, str]] = []
    with anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(policy, STANDIN, "--audit-log", str(audit)) as session:
            done = anyio.Event()

            async def rewrite() -> None:
                for n in range(ROUNDS):
                    content = VERSIONS[(n + 1) % 2]
                    with open(policy, "w", encoding="utf-8") as handle:
                        handle.write(content[:CUT])
                        handle.flush()
                        await anyio.sleep(PAUSE)
                        handle.write(content[CUT:])
                    await anyio.sleep(SETTLE)
                # An editor that writes a new file and renames it over the old one.
                staged = tmp_path / ".torture.yaml.swp"
                staged.write_text(VERSIONS[ROUNDS % 2 - 1], encoding="utf-8")
                os.replace(staged, policy)
                await anyio.sleep(SETTLE)
                done.set()

            async def call() -> None:
                while not done.is_set():
                    result = await session.call_tool("conda", {"command": "list"})
                    outcomes.append((result.is_error, text(result)))
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as tg:
                tg.start_soon(rewrite)
                tg.start_soon(call)
    reloads = [e for e in map(json.loads, audit.read_text(encoding="utf-8").splitlines()) if e["event"] == "reload"]
    loaded = [e["revision"] for e in reloads if e["ok"]]
    assert set(loaded) <= complete, "a reload loaded a half-written file"
    assert len(loaded) >= ROUNDS // 2, "the torture did not exercise reloads"
    assert outcomes and all(denied for denied, _ in outcomes), "a call was allowed by a partial policy"
    assert {message.rsplit(" ", 1)[-1] for _, message in outcomes} <= {"(A)", "(B)"}
