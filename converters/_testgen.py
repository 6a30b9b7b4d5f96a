"""Write ``opa test`` cases that exercise each converted rule's denying and allowing side."""

from __future__ import annotations

from dataclasses import dataclass, field

import re2

from regogate.converters._allowed import AllowedCall, allowed_calls
from regogate.converters._conditions import Helpers, rego_literal
from regogate.converters._gotext import go_text
from regogate.converters._model import Condition, Policy, Rule, snake_case
from regogate.converters._regex_example import regex_example
from regogate.converters._rego import package_name
from regogate.core import WILDCARD

#: The name the generated tests give the policy package under test.
TESTED_ALIAS = "policy"


class _Missing:
    """An argument left out of a synthesised call."""


MISSING = _Missing()


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_json(value: object) -> object:
    """A value as Intercept holds a JSON argument: every number a float64."""
    if _number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    return value


def _equal(actual: object, expected: object) -> bool:
    """Intercept's eq: numbers by value, anything else by Go's %v text."""
    if _number(actual) and _number(expected):
        return actual == expected
    return go_text(_as_json(actual)) == go_text(expected)


def condition_holds(condition: Condition, actual: object) -> bool:
    """The documented meaning of a condition, in Python (to choose test values)."""
    op, expected = condition.op, condition.value
    if condition.counter is not None and actual is MISSING:
        actual = 0  # a counter never written reads 0
    if op == "exists":
        return (actual is not MISSING and actual is not None) == expected
    if actual is MISSING:
        return False
    if op in ("neq", "not_regex", "not_contains", "not_in"):
        positive = {"neq": "eq", "not_regex": "regex", "not_contains": "contains", "not_in": "in"}[op]
        return not condition_holds(Condition(condition.path, positive, expected, condition.mark), actual)  # type: ignore[arg-type]
    if op == "eq":
        return _equal(actual, expected)
    if op == "in":
        assert isinstance(expected, list)
        return any(_equal(actual, v) for v in expected)
    if op in ("lt", "lte", "gt", "gte"):
        if not isinstance(actual, int | float) or isinstance(actual, bool) or not isinstance(expected, int | float):
            return False
        a, b = float(actual), float(expected)
        return {"lt": a < b, "lte": a <= b, "gt": a > b, "gte": a >= b}[op]
    if op == "regex":
        return isinstance(actual, str) and re2.search(str(expected), actual) is not None
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    return isinstance(actual, list) and any(_equal(x, expected) for x in actual)


def _candidates(condition: Condition) -> list[object]:
    """Values likely to satisfy the condition (checked afterwards)."""
    value, op = condition.value, condition.op
    if op == "eq":
        return [value]
    if op == "neq":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [value + 1]
        return [f"{value}-other" if isinstance(value, str) else "other"]
    if op == "in":
        return list(value)[:1] if isinstance(value, list) else []
    if op in ("not_in", "not_regex", "not_contains"):
        return ["regogate-test-value", 0]
    if op in ("lt", "lte", "gt", "gte"):
        step = {"lt": -1, "lte": 0, "gt": 1, "gte": 0}[op]
        return [value + step] if isinstance(value, int | float) else []
    if op == "regex":
        example = regex_example(str(value))
        return [example] if example is not None else []
    if op == "contains":
        return [f"x{value}x" if isinstance(value, str) else [value], [value]]
    return ["present"] if value else [MISSING]


@dataclass(frozen=True)
class _Example:
    arguments: dict[str, object]
    state: dict[str, dict[str, object]]
    principal: dict[str, object] = field(default_factory=dict)


def _place(example: _Example, condition: Condition, value: object) -> None:
    keys = condition.arg_path or condition.principal_path
    if keys is not None:
        *parents, last = keys
        node = example.arguments if condition.arg_path is not None else example.principal
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        if value is MISSING:
            node.pop(last, None)
        else:
            node[last] = value
    elif condition.counter is not None:
        scope, counter = condition.counter
        if value is MISSING:
            example.state.get(scope, {}).pop(counter, None)
        else:
            example.state.setdefault(scope, {})[counter] = value


def _passing(conditions: list[Condition]) -> _Example | None:
    """Arguments and counter values under which every condition holds, if we can find them."""
    example = _Example({}, {})
    by_path: dict[str, list[Condition]] = {}
    for condition in conditions:
        by_path.setdefault(condition.path, []).append(condition)
    for group in by_path.values():
        options = [c for cond in group for c in _candidates(cond)]
        chosen = next((v for v in options if all(condition_holds(c, v) for c in group)), None)
        if chosen is None and not any(c is MISSING for c in options):
            return None
        _place(example, group[0], MISSING if chosen is None else chosen)
    return example


def _failing(conditions: list[Condition], base: _Example) -> _Example:
    """The passing example with its first condition broken."""
    first = conditions[0]
    broken = _Example(
        _deep_copy(base.arguments), {k: dict(v) for k, v in base.state.items()}, _deep_copy(base.principal)
    )
    value: object = "present" if first.op == "exists" and not first.value else MISSING
    if first.counter is not None:
        bound = first.value if _number(first.value) else 0
        tries: list[object] = [bound + 1, bound - 1, bound, -1, 10**9]  # type: ignore[operator]
        value = next((v for v in tries if not condition_holds(first, v)), value)
    _place(broken, first, value)
    return broken


def _deep_copy(value: dict[str, object]) -> dict[str, object]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in value.items()}


def _gate_conditions(rule: Rule) -> list[Condition]:
    """The conditions that decide whether the rule passes, including a countable increment_from argument."""
    conditions = list(rule.conditions)
    if rule.counter is not None and rule.counter.increment_from is not None:
        conditions.append(Condition("args." + ".".join(rule.counter.increment_from), "gte", 1, rule.mark))
    return conditions


class _TestWriter:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.alias = TESTED_ALIAS
        self.tests: list[str] = []

    def tool_for(self, rule: Rule) -> str:
        if rule.tool != WILDCARD:
            return rule.tool
        listed = [t for t in self.policy.listed if t not in self.policy.hide]
        return listed[0] if listed else "any-tool"

    def call(self, tool: str, example: _Example | None = None, schema: object = None) -> str:
        arguments = example.arguments if example else {}
        state = example.state if example else {}
        schema = {"type": "object"} if schema is None else schema
        call = f"_call({rego_literal(tool)}, {rego_literal(arguments)}, {rego_literal(state)}, {rego_literal(schema)})"
        if example is not None and example.principal:
            call = f'object.union({call}, {{"principal": {rego_literal(example.principal)}}})'
        return call

    def denial_test(self, name: str, rule_name: str, call: str, *, denied: bool) -> None:
        check = f"{rego_literal(rule_name)} in rules" if denied else f"not {rego_literal(rule_name)} in rules"
        self.tests.append(
            f"test_{name} if {{\n"
            f"\trules := {{v.rule | some v in {self.alias}.deny}} with input as {call}\n"
            f"\t{check}\n}}"
        )

    def approval_test(self, name: str, rule_name: str, call: str, *, asked: bool) -> None:
        check = f"{rego_literal(rule_name)} in rules" if asked else f"not {rego_literal(rule_name)} in rules"
        self.tests.append(
            f"test_{name} if {{\n"
            f"\trules := {{a.rule | some a in {self.alias}.approvals}} with input as {call}\n"
            f"\t{check}\n}}"
        )

    def rule_tests(self, rule: Rule) -> None:
        tool = self.tool_for(rule)
        ident = rule.ident
        if rule.action == "deny":
            self.denial_test(f"{ident}_denies", rule.name, self.call(tool), denied=True)
            if rule.tool != WILDCARD:
                self.denial_test(f"{ident}_spares_other_tools", rule.name, self.call(f"{tool}-other"), denied=False)
            return
        conditions = _gate_conditions(rule)
        passing = _passing(conditions) if conditions else _Example({}, {})
        if rule.action == "require_approval":
            if passing is not None:
                self.approval_test(f"{ident}_requires_approval", rule.name, self.call(tool, passing), asked=True)
            if conditions and passing is not None:
                failing = _failing(conditions, passing)
                self.approval_test(
                    f"{ident}_skips_calls_it_does_not_match", rule.name, self.call(tool, failing), asked=False
                )
            return
        if passing is None:
            self.tests.append(f"# {rule.name}: no allowing example could be derived from its conditions")
        else:
            self.denial_test(f"{ident}_allows", rule.name, self.call(tool, passing), denied=False)
        if conditions:
            base = passing or _Example({}, {})
            self.denial_test(f"{ident}_denies", rule.name, self.call(tool, _failing(conditions, base)), denied=True)
        if rule.required_args:
            required: dict[str, object] = {"type": "object", "required": ["regogate_test_arg"]}
            self.denial_test(
                f"{ident}_denies_missing_required_argument", rule.name, self.call(tool, passing, required), denied=True
            )
        if rule.required_args or rule.schema:
            self.tests.append(
                f"test_{ident}_denies_when_schema_unknown if {{\n"
                f'\tcall := json.remove({self.call(tool, passing)}, ["tool/input_schema"])\n'
                f"\trules := {{v.rule | some v in {self.alias}.deny}} with input as call\n"
                f"\t{rego_literal(rule.name)} in rules\n}}"
            )
        if rule.schema:
            schema: dict[str, object] = {"type": "object", "properties": {"regogate_test_arg": {"type": "integer"}}}
            bad = _Example({**(passing.arguments if passing else {}), "regogate_test_arg": "not a number"}, {})
            self.denial_test(
                f"{ident}_denies_arguments_against_schema", rule.name, self.call(tool, bad, schema), denied=True
            )
        if rule.counter is not None and rule.limit is not None:
            key = f"{rule.scope}/{rule.counter.name}"
            if rule.per_principal:
                passing = _Example(passing.arguments if passing else {}, {}, {"id": "regogate-test-principal"})
                key = f"{key}/principal/regogate-test-principal"
            self.tests.append(
                f"test_{ident}_declares_its_limit if {{\n"
                f"\tlimits := {self.alias}.rate_limits with input as {self.call(tool, passing)}\n"
                f"\tsome limit in limits\n"
                f"\tlimit.key == {rego_literal(key)}\n"
                f"\tlimit.rule == {rego_literal(rule.name)}\n}}"
            )

    def allowed_call_tests(self, allowed: AllowedCall, ident: str) -> None:
        """The rule gives the gate's decision for a call every rule passes, and nothing for one a rule denies."""
        tool = allowed.tool if allowed.tool is not None else "regogate-unlisted-tool"
        conditions = [c for rule in allowed.rules for c in _gate_conditions(rule)]
        passing = _passing(conditions) if conditions else _Example({}, {})
        if passing is None:
            self.tests.append(f"# allowed_call of {tool}: no allowing example could be derived from its conditions")
            return
        keys = allowed.limit_keys
        if any(r.per_principal for r in allowed.rules):
            passing = _Example(passing.arguments, passing.state, {**passing.principal, "id": "regogate-test-principal"})
            per = {f"{r.scope}/{r.counter.name}" for r in allowed.rules if r.per_principal and r.counter is not None}
            keys = [f"{k}/principal/regogate-test-principal" if k in per else k for k in keys]
        schema: dict[str, object] | None = None
        if any(r.required_args for r in allowed.rules):  # a required argument that is there
            schema = {"type": "object", "required": ["regogate_test_arg"]}
            passing = _Example({**passing.arguments, "regogate_test_arg": "present"}, passing.state, passing.principal)
        self.tests.append(
            f"test_allowed_call_{ident}_decides_a_passing_call if {{\n"
            f"\tdecision := {self.alias}.allowed_call with input as {self.call(tool, passing, schema)}\n"
            f"\tdecision.allow\n"
            f"\tdecision.reasons == []\n"
            f"\t[limit.key | some limit in decision.rate_limits] == {rego_literal(keys)}\n}}"
        )
        if conditions:
            failing = self.call(tool, _failing(conditions, passing), schema)
            self.tests.append(
                f"test_allowed_call_{ident}_leaves_a_failing_call_to_the_gate if {{\n"
                f"\tnot {self.alias}.allowed_call with input as {failing}\n}}"
            )

    def policy_tests(self) -> None:
        if self.policy.hide:
            hidden = next((n for n in self.policy.hide if n != WILDCARD), "any-tool")
            self.denial_test("hidden_tool_denied", "hide", self.call(hidden), denied=True)
        if self.policy.default == "deny":
            self.denial_test("unlisted_tool_denied", "default", self.call("regogate-unlisted-tool"), denied=True)
            if self.policy.listed:
                self.denial_test("listed_tool_permitted", "default", self.call(self.policy.listed[0]), denied=False)


def generate_tests(policy: Policy) -> str:
    """The ``*_test.rego`` source for a converted policy."""
    writer = _TestWriter(policy)
    writer.policy_tests()
    for rule in policy.rules:
        writer.rule_tests(rule)
    idents: set[str] = set()
    for allowed in allowed_calls(policy, Helpers()):
        base = snake_case(allowed.tool) if allowed.tool is not None else "unlisted_tools"
        ident, n = base, 2
        while ident in idents:
            ident, n = f"{base}_{n}", n + 1
        idents.add(ident)
        writer.allowed_call_tests(allowed, ident)
    header = (
        f"# Tests generated by regogate from {policy.source}; convert again, do not edit.\n"
        f"package {package_name(policy)}_test\n\n"
        # A fixed alias: the server id may be a Rego keyword or a name the tests use (default, count, rules).
        f"import data.{package_name(policy)} as {TESTED_ALIAS}\n\n"
        "_call(tool, arguments, state, schema) := {\n"
        '\t"version": 1,\n'
        '\t"kind": "tools/call",\n'
        f'\t"server": {{"id": {rego_literal(policy.server_id)}}},\n'
        '\t"tool": {"name": tool, "arguments": arguments, "input_schema": schema},\n'
        '\t"state": state,\n'
        "}\n"
    )
    return header + "\n" + "\n\n".join(writer.tests) + "\n"
