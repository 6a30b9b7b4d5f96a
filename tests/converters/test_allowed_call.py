"""A converted policy's ``allowed_call`` (the gate's fast path) decides exactly as the gate's generic path.

One real OPA holds the gate; each policy (the shipped ones, the seed, and policies hypothesis draws from
the YAML grammar) is uploaded next to it, and every drawn call is decided twice in the same OPA:
``decision`` (which takes ``allowed_call`` when it is defined) and ``generic_call_decision`` (which never
does). They must be the same document, and the fast path must really be taken for many calls.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st

from regogate.converters import Policy, gate_bundle, generate_rego, parse_policy, write_bundle
from regogate.converters._testgen import _Example, _gate_conditions, _passing
from regogate.core import WILDCARD, PolicySourceError
from tests.conftest import POLICIES
from tests.converters.test_policy_properties import policies
from tests.opa_server import opa_server

SEED = Path(__file__).parent / "seed" / "python-mcp-server-policy.yaml"
FIXED = [*(POLICIES / f"{n}.yaml" for n in ("python", "github", "stripe", "filesystem", "python-approval")), SEED]
BENCH = Path(__file__).parents[2] / "bench" / "bench.yaml"
#: Each drawn policy is one upload (OPA compiles it) and a few dozen local queries.
EXAMPLES = 40
CALLS_PER_POLICY = 50
SHIPPED_CALLS = 200
#: One decision query is a local HTTP round trip; the bound only stops a hung OPA from hanging the test.
QUERY_TIMEOUT = 10.0

SCALARS: list[object] = [None, True, -1, 0, 1, 2.9, 1e6, "", "x", "5", "main"]
COUNTS: list[object] = [0, 1, 2, 3, 9, 10, 11, 29, 30, 31, 60, 1_000_000, 1e9, "x", None]
SCHEMAS = ["object", "object", "absent", "required", "required", "typed", "not a schema"]


@pytest.fixture(scope="module")
def opa_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gate = tmp_path_factory.mktemp("gate")
    write_bundle(gate_bundle(), gate)
    with opa_server(["-b", str(gate)], mounts=[gate], mode="local") as server:
        yield server.url


def _paths(document: dict[str, Any]) -> tuple[dict[str, list[object]], list[tuple[str, str]]]:
    """The arguments a policy reads, with the values its conditions name, and the counters it reads."""
    names: dict[str, list[object]] = {"text": [], "command": [], "amount": []}
    counters: set[tuple[str, str]] = set()
    for tool in (document.get("tools") or {}).values():
        for rule in tool.get("rules") or []:
            for condition in rule.get("conditions") or []:
                parts = str(condition["path"]).split(".")
                value = condition.get("value")
                if parts[0] == "args":
                    names.setdefault(parts[1], []).extend(value if isinstance(value, list) else [value])
                elif parts[0] == "state" and len(parts) == 3:
                    counters.add((parts[1], parts[2]))
            state = rule.get("state") or {}
            if "increment_from" in state:
                names.setdefault(str(state["increment_from"]).split(".")[1], [])
    return names, sorted(counters)


def _value(rnd: random.Random, named: list[object]) -> object:
    """A value its conditions name (or one next to it), a scalar, a list or a map."""
    kind = rnd.randrange(8)
    if kind < 4 and named:
        value = rnd.choice(named)
        if isinstance(value, int | float) and not isinstance(value, bool) and kind > 1:
            return value + rnd.choice([-1, 1])
        return value
    if kind == 6:
        return [rnd.choice(SCALARS + named) for _ in range(rnd.randrange(3))]
    if kind == 7:
        return {"k": rnd.choice(SCALARS)}
    return rnd.choice(SCALARS)


def _passing_examples(policy: Policy) -> dict[str, _Example]:
    """For each tool, arguments and counters under which its rules and the wildcard's pass (when found)."""
    examples = {}
    for tool in policy.listed:
        rules = [r for r in policy.rules if r.tool in (tool, WILDCARD)]
        example = _passing([c for rule in rules for c in _gate_conditions(rule)])
        if example is not None:
            examples[tool] = example
    return examples


def make_calls(rnd: random.Random, document: dict[str, Any], policy: Policy, count: int) -> list[dict[str, Any]]:
    """tools/call inputs for the policy's tools (and others): random ones, and ones that pass every rule
    but for one argument or counter (the fast path's edge)."""
    examples = _passing_examples(policy)
    named, counters = _paths(document)
    names = sorted(named)
    tools = [t for t in (document.get("tools") or {}) if t != "*"]
    hidden = [t for t in (document.get("hide") or []) if t != "*"]
    made = []
    for _ in range(count):
        arguments = {name: _value(rnd, named[name]) for name in names if rnd.random() < 0.8}
        state: dict[str, dict[str, object]] = {}
        for scope, counter in counters:
            if rnd.random() < 0.6:
                state.setdefault(scope, {})[counter] = rnd.choice(COUNTS)
        name = rnd.choice([*tools, *tools, *hidden, "some-other-tool"])
        if name in examples and rnd.random() < 0.6:
            example = copy.deepcopy(examples[name])
            arguments, state = example.arguments, example.state
            if rnd.random() < 0.7:  # one argument changed or dropped
                changed = rnd.choice(names)
                arguments[changed] = _value(rnd, named[changed])
                if rnd.random() < 0.2:
                    del arguments[changed]
        tool: dict[str, Any] = {"name": name, "arguments": arguments}
        schema = rnd.choice(SCHEMAS)
        if schema == "object":
            tool["input_schema"] = {"type": "object"}
        elif schema == "required":
            tool["input_schema"] = {"type": "object", "required": rnd.sample(names, rnd.randrange(1, 3))}
        elif schema == "typed":
            tool["input_schema"] = {"type": "object", "properties": {rnd.choice(names): {"type": "integer"}}}
        elif schema == "not a schema" and rnd.random() < 0.2:  # OPA errors on it: the calls are then asked one by one
            tool["input_schema"] = schema
        call: dict[str, Any] = {"version": 1, "kind": "tools/call", "tool": tool, "state": state}
        if rnd.random() < 0.5:
            call["principal"] = {"id": rnd.choice(["alice", "bob", "a/b"])}
        if rnd.random() < 0.2:
            call["approval"] = {"id": "apr-1", "by": "ana", "via": "cli"}
        made.append(call)
    return made


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """The property test's policies, plus what it leaves out: approvals, validation, per-caller limits, hide all."""
    document: dict[str, Any] = draw(policies())
    tools = document["tools"]
    for name in list(tools):
        extra = draw(st.sampled_from(["none", "none", "approval", "validate", "schema", "per_principal", "amount"]))
        rules = tools[name]["rules"]
        if extra == "approval":
            rule: dict[str, Any] = {"action": "require_approval"}
            if draw(st.booleans()):
                rule["conditions"] = [{"path": "args.text", "op": "exists", "value": True}]
            rules.append(rule)
        elif extra in ("validate", "schema"):
            rules.append({"action": "allow", "validate": {"required_args": True, "schema": extra == "schema"}})
        elif extra == "per_principal":
            rules.append({"action": "allow", "rate_limit": "3/day", "per": "principal"})
        elif extra == "amount":
            scope = "_global" if name == "*" else name
            state = {"counter": "spent", "window": "day", "increment_from": "args.amount"}
            rules.append({"state": state, "conditions": [{"path": f"state.{scope}.spent", "op": "lte", "value": 50}]})
    if draw(st.integers(0, 9)) == 0:
        document["hide"] = ["*"]
    return document


class Decider:
    """Uploads policies to the test's OPA and decides calls both ways."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=QUERY_TIMEOUT)
        self.fast = 0

    def upload(self, text: str, server_id: str) -> Policy:
        policy = parse_policy(text, source=f"{server_id}.yaml", server_id=server_id)
        response = self.client.put(f"/v1/policies/{server_id}", content=generate_rego(policy))
        assert response.status_code == 200, response.text
        return policy

    def query(self, path: str, call: dict[str, Any]) -> Any:
        """The result (None when undefined), or the error OPA answered (a builtin error, as the proxy asks)."""
        response = self.client.post(f"/v1/data/{path}?strict-builtin-errors=true", json={"input": call})
        if response.status_code == 500:
            return ("error", [e["message"] for e in response.json().get("errors", [])])
        assert response.status_code == 200, response.text
        return response.json().get("result")

    def check(self, server_id: str, calls: list[dict[str, Any]]) -> None:
        """Decide the calls both ways in one query; one call at a time when OPA answers with an error."""
        calls = [{**call, "server": {"id": server_id}} for call in calls]
        response = self.client.post("/v1/query?strict-builtin-errors=true", json={"query": BOTH_WAYS, "input": calls})
        if response.status_code == 500:
            for call in calls:
                self.check_one(call)
            return
        assert response.status_code == 200, response.text
        rows = response.json()["result"]
        assert len(rows) == len(calls)
        for row in rows:
            note(f"call: {calls[row['i']]}")
            assert row["decision"] == row["generic"]
            if row["fast"]:
                assert row["decision"] == row["fast"][0]
                assert row["decision"]["allow"] is True
                self.fast += 1

    def check_one(self, call: dict[str, Any]) -> None:
        note(f"call: {call}")
        decision = self.query("regogate/gate/decision", call)
        generic = self.query("regogate/gate/generic_call_decision", call)
        assert decision == generic


#: Both decisions (and the policy's allowed_call, if any) of every call in the input list.
BOTH_WAYS = """\
some i, call in input
decision := data.regogate.gate.decision with input as call
generic := data.regogate.gate.generic_call_decision with input as call
fast := [d | d := data.regogate.policies[call.server.id].allowed_call with input as call]
"""


@pytest.fixture(scope="module")
def decider(opa_url: str) -> Iterator[Decider]:
    decider = Decider(opa_url)
    yield decider
    decider.client.close()


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
    )


@pytest.mark.parametrize("path", [*FIXED, BENCH], ids=lambda p: p.stem)
def test_shipped_policies_decide_the_same_both_ways(decider: Decider, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    server_id = path.stem.replace("-", "_")
    policy = decider.upload(text, server_id)
    document = yaml.safe_load(text)
    before = decider.fast

    @_settings(SHIPPED_CALLS // CALLS_PER_POLICY)
    @given(seed=st.integers(0, 2**32))
    def decide_both_ways(seed: int) -> None:
        decider.check(server_id, make_calls(random.Random(seed), document, policy, CALLS_PER_POLICY))

    decide_both_ways()
    # Every one of these policies lets some call through by itself (python-approval: its unlisted-but-allowed tools).
    assert decider.fast > before


@pytest.mark.slow
def test_drawn_policies_decide_the_same_both_ways(decider: Decider) -> None:
    before = decider.fast

    @_settings(EXAMPLES)
    @given(document=documents(), seed=st.integers(0, 2**32))
    def decide_both_ways(document: dict[str, Any], seed: int) -> None:
        text = yaml.safe_dump(document, sort_keys=False)
        note(text)
        try:
            policy = decider.upload(text, "drawn")  # replaces the previous example's policy
        except PolicySourceError:
            assume(False)
        decider.check("drawn", make_calls(random.Random(seed), document, policy, CALLS_PER_POLICY))

    decide_both_ways()
    assert decider.fast - before >= EXAMPLES  # the fast path answered, on average, at least once per policy
