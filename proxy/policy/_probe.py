"""The start-up probe: does the decision path answer a tools/call with a well-formed decision?

A wrong ``--opa-path``, a Rego directory without the gate, or a policy for another server id would
otherwise start, then deny every call and hide every tool. ``probe_decision`` asks once, before
serving, and says what is wrong.
"""

from __future__ import annotations

from typing import Final

from regogate.core import ConfigError, DecisionError
from regogate.proxy.policy._decision import CallInput, Decision, parse_decision
from regogate.proxy.policy._opa_client import OpaClient

__all__ = ["PROBE_TOOL", "check_probe_result", "probe_decision", "probe_input"]

#: A tool name no server offers, so no policy rule matches it by name.
PROBE_TOOL: Final = "regogate.probe"


def probe_input(server_id: str) -> dict[str, object]:
    """The probe's OPA input: a version 1 tools/call of ``PROBE_TOOL`` with no arguments."""
    return CallInput(
        server_id=server_id, tool_name=PROBE_TOOL, arguments={}, request_id="regogate-probe", now=0.0
    ).to_document()


def check_probe_result(result: object, *, path: str, defined: bool = True) -> Decision:
    """The probe's decision, or ``ConfigError`` saying why it is not one regogate can use.

    Raises:
        ConfigError: the path is undefined, the answer breaks the decision contract, or the gate
            reports that no policy is loaded for this server id.
    """
    query = "data." + path.strip("/").replace("/", ".")
    if not defined:
        raise ConfigError(
            f"{query} is undefined for a probe tools/call: check --opa-path, and that the Rego declares it "
            "(a Rego directory without package regogate.gate gets regogate's gate loaded beside it)"
        )
    try:
        decision = parse_decision(result, kind="tools/call")
    except DecisionError as exc:
        raise ConfigError(f"{query} answered a probe tools/call with no usable decision: {exc}") from exc
    for reason in decision.reasons:
        if reason.rule in ("regogate.no_policy", "regogate.bad_input"):
            raise ConfigError(f"{query} answered a probe tools/call with {reason.rule}: {reason.message}")
    return decision


async def probe_decision(client: OpaClient, path: str, server_id: str) -> Decision:
    """Ask ``path`` about the probe input.

    Raises:
        ConfigError: see ``check_probe_result``; also when OPA cannot be asked at all.
    """
    try:
        result, _ = await client.evaluate(path, probe_input(server_id))
    except DecisionError as exc:
        if exc.code == "decision_undefined":
            return check_probe_result(None, path=path, defined=False)
        raise ConfigError(f"OPA did not answer the start-up probe: {exc}") from exc
    return check_probe_result(result, path=path)
