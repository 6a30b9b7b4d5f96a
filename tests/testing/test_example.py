"""Integration tests of a policy with regogate.testing: real OPA, real MCP server, real SDK client.

The complete example of docs/testing.md (which shows this file as it is). Copy it into a project
that has ``pip install 'regogate[testing]'``; SERVER is the MCP server the policy guards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from regogate.testing import RedisContainer, SessionFactory, assert_allowed, assert_denied, audit_entries

pytestmark = pytest.mark.anyio

POLICY = Path(__file__).with_name("python-team.yaml")
SERVER = [sys.executable, str(Path(__file__).parents[1] / "servers" / "python_standin.py")]


async def test_a_denied_tool_never_reaches_the_server(regogate_session: SessionFactory) -> None:
    async with regogate_session(POLICY, SERVER) as client:
        denied = await client.call_tool("conda", {"command": "create"})
        allowed = await client.call_tool("black", {"path": "."})

    assert_denied(denied, rule="no-conda", message="managed by CI")
    assert_allowed(allowed)
    [decision] = [e for e in audit_entries(client, denied) if e["event"] == "decision"]
    assert decision["tool"] == "conda" and decision["allow"] is False


async def test_a_tool_the_policy_does_not_list_is_denied(regogate_session: SessionFactory) -> None:
    async with regogate_session(POLICY, SERVER) as client:
        result = await client.call_tool("pytest", {"path": "tests"})
    assert_denied(result)


async def test_the_install_budget_is_shared_by_every_agent_through_redis(
    regogate_session: SessionFactory, regogate_redis: RedisContainer
) -> None:
    shared = ["--state", regogate_redis.url]
    async with (
        regogate_session(POLICY, SERVER, flags=shared) as first,
        regogate_session(POLICY, SERVER, flags=shared) as second,
    ):
        one = await first.call_tool("pip-install", {"packages": ["requests"]})
        two = await second.call_tool("pip-install", {"packages": ["httpx"]})
        three = await first.call_tool("pip-install", {"packages": ["rich"]})

    assert_allowed(one)
    assert_allowed(two)
    assert_denied(three, rule="install-budget", message="Two installs a minute")
