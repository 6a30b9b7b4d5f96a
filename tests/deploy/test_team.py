"""The team setup: a shared OPA pulling bundles from nginx, as docker-compose.yml configures it.

OPA's arguments come from ``docker-compose config`` (deploy/opa/team.yaml), its bundles from a real
nginx, and regogate runs as the MCP client spawns it, with ``--opa-url``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import free_tcp_port
from tests.deploy.conftest import (
    BUNDLE_NAMES,
    DEPLOY,
    BundleServer,
    audit_events,
    compose_opa,
    fast_polling,
    publish_all,
    python_bundle,
    python_policy,
)
from tests.e2e.harness import REGOGATE, STANDIN, gated_session, text
from tests.opa_server import Mode, OpaServer, opa_server

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 30
#: OPA polls every second here; a new revision is active within about two.
CHANGE_TIMEOUT = 10
#: regogate reads the revisions every second.
AUDIT_TIMEOUT = 5
POLL = 0.1


def team_opa(
    server: BundleServer, mode: Mode, *, port: int | None = None, wait_for_bundles: bool = True
) -> AbstractContextManager[OpaServer]:
    """OPA as docker-compose.yml runs it, polling ``server`` every second."""
    args = compose_opa(["docker-compose.yml"], {}, volumes={"/etc/regogate/opa": DEPLOY / "opa"})
    return opa_server(
        [*args, *fast_polling()],
        mounts=[DEPLOY / "opa"],
        env={"REGOGATE_BUNDLE_SERVER": server.url},
        port=port,
        wait_for_bundles=wait_for_bundles,
        mode=mode,
    )


async def wait_for_event(audit: Path, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first audit event that satisfies ``predicate``, once regogate has written it."""
    with anyio.fail_after(AUDIT_TIMEOUT):
        while True:
            for event in audit_events(audit):
                if predicate(event):
                    return event
            await anyio.sleep(POLL)


async def test_a_published_revision_changes_decisions_without_a_restart_and_is_reported(
    tmp_path: Path, bundle_server: BundleServer, opa_mode: Mode
) -> None:
    v1, v2 = python_policy(tmp_path), python_policy(tmp_path, frozen_black=True)
    first = publish_all(bundle_server, v1)
    second = python_bundle(v2)
    audit = tmp_path / "audit.jsonl"
    with team_opa(bundle_server, opa_mode) as opa, anyio.fail_after(SESSION_TIMEOUT):
        async with gated_session(v1, STANDIN, "--opa-url", opa.url, "--audit-log", str(audit)) as session:
            before = await session.call_tool("black", {"path": "."})
            bundle_server.publish("python", second)
            with anyio.fail_after(CHANGE_TIMEOUT):
                while not (after := await session.call_tool("black", {"path": "."})).is_error:
                    await anyio.sleep(POLL)
            reported = await wait_for_event(
                audit, lambda e: e["event"] == "bundles" and e["revisions"].get("python") == second.revision
            )
            stamped = await session.call_tool("black", {"path": "src"})
        console = opa.decision_log()
    assert not before.is_error
    assert text(after) == "[POLICY DENIED] black is frozen for the release"
    assert stamped.is_error
    events = audit_events(audit)
    start = events[0]
    assert start["event"] == "start" and start["opa"] == opa.url
    assert start["revisions"] == {name: first[name].revision for name in BUNDLE_NAMES}
    assert reported["previous"]["python"] == first["python"].revision
    decisions = [e for e in events if e["event"] == "decision"]
    assert decisions[0]["revisions"]["python"] == first["python"].revision and decisions[0]["allow"]
    assert decisions[-1]["revisions"]["python"] == second.revision and not decisions[-1]["allow"]
    # OPA's own decision log names the exact revision of each decision; decision_id joins the two logs.
    by_id = {e["decision_id"]: e for e in console}
    assert by_id[decisions[0]["decision_id"]]["bundles"]["python"]["revision"] == first["python"].revision
    denied = by_id[decisions[-1]["decision_id"]]
    assert denied["bundles"]["python"]["revision"] == second.revision
    assert "arguments" not in denied["input"]["tool"]
    assert denied["input"]["tool"]["arguments_hash"] == decisions[-1]["args_hash"]
    assert all(e["path"] != "system/bundles" for e in console)  # regogate's revision reads are dropped
    # OPA's polls carry the ETag: an unchanged bundle costs a 304, a changed one a 200.
    assert 304 in bundle_server.statuses("gate")
    assert bundle_server.statuses("python").count(200) >= 2


async def test_regogate_does_not_serve_until_opa_has_its_bundles(
    tmp_path: Path, bundle_server: BundleServer, opa_mode: Mode
) -> None:
    policy = python_policy(tmp_path)
    audit = tmp_path / "audit.jsonl"
    with team_opa(bundle_server, opa_mode, wait_for_bundles=False) as opa:
        gate = [REGOGATE, "-c", str(policy), "--opa-url", opa.url]
        out = subprocess.run(
            [*gate, "--opa-ready-timeout", "1", "--audit-log", str(audit), "--", *STANDIN],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 1 and out.stdout == ""
        assert f"OPA at {opa.url} was not ready within 1 s" in out.stderr
        assert "bundles are not active" in out.stderr and "nothing was started" in out.stderr
        assert not audit.exists() or not audit.read_text(encoding="utf-8")
        publish_all(bundle_server, policy)
        with anyio.fail_after(SESSION_TIMEOUT):
            async with gated_session(policy, STANDIN, "--opa-url", opa.url, "--opa-ready-timeout", "20") as session:
                allowed = await session.call_tool("black", {"path": "."})
    assert not allowed.is_error


def test_an_unreachable_opa_is_named_at_start_up(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_tcp_port()}"
    out = subprocess.run(
        [REGOGATE, "-c", str(python_policy(tmp_path)), "--opa-url", url, "--opa-ready-timeout", "0.5", "--", *STANDIN],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1
    assert f"OPA at {url} was not ready within 0.5 s: it cannot be reached" in out.stderr


async def test_an_opa_that_lost_its_bundles_fails_closed(
    tmp_path: Path, bundle_server: BundleServer, opa_mode: Mode
) -> None:
    policy = python_policy(tmp_path)
    publish_all(bundle_server, policy)
    audit = tmp_path / "audit.jsonl"
    port = free_tcp_port()
    with ExitStack() as first_opa, anyio.fail_after(SESSION_TIMEOUT):
        opa = first_opa.enter_context(team_opa(bundle_server, opa_mode, port=port))
        async with gated_session(policy, STANDIN, "--opa-url", opa.url, "--audit-log", str(audit)) as session:
            allowed = await session.call_tool("black", {"path": "."})
            # OPA restarts while the bundle server is empty: it answers, but has no policy.
            first_opa.close()
            for name in BUNDLE_NAMES:
                bundle_server.withdraw(name)
            with team_opa(bundle_server, opa_mode, port=port, wait_for_bundles=False):
                denied = await session.call_tool("black", {"path": "."})
                lost = await wait_for_event(audit, lambda e: e["event"] == "bundles" and e["ok"] is False)
    assert not allowed.is_error
    assert denied.is_error and text(denied).endswith("policy check unavailable (decision_undefined)")
    assert lost["revisions"] == {}
