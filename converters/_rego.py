"""Turn a validated policy into one Rego v1 package that reads side by side with its YAML."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from regogate.converters._model import Condition, Policy, Rule
from regogate.core import WILDCARD

# Rego keywords, which cannot follow a dot in a reference.
RESERVED = frozenset(
    (
        "as",
        "contains",
        "default",
        "else",
        "every",
        "false",
        "if",
        "import",
        "in",
        "not",
        "null",
        "package",
        "some",
        "true",
        "with",
    )
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN_YAML = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-/\[\]]*$")

INPUT_ARGS = "input.tool.arguments"
INPUT_PRINCIPAL = "input.principal"
#: How long a person has to answer when a require_approval rule names no approval_timeout.
DEFAULT_APPROVAL_TIMEOUT = "5m"
INPUT_SCHEMA = "input.tool.input_schema"
UNKNOWN_SCHEMA = "cannot check the arguments: the input schema of this tool is unknown"

CONTAINS_HELPER = """\
# contains_value holds when needle is a substring of a string haystack or a member of a list haystack.
contains_value(haystack, needle) if {
\tis_string(haystack)
\tis_string(needle)
\tcontains(haystack, needle)
}

contains_value(haystack, needle) if {
\tis_array(haystack)
\tneedle in haystack
}
"""

PRESENT_HELPER = """\
# argument_present holds when the argument is there and neither null nor an empty string.
argument_present(arguments, name) if {
\tvalue := arguments[name]
\tvalue != null
\tvalue != ""
}
"""


def package_name(policy: Policy) -> str:
    """The Rego package a policy converts into."""
    return f"regogate.policies.{policy.server_id}"


def rego_literal(value: object) -> str:
    """A JSON value written as a Rego term (JSON is valid Rego)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def ref(base: str, keys: Iterable[str]) -> str:
    """``base.a.b``, with brackets for keys that are not plain identifiers."""
    out = base
    for key in keys:
        out += f".{key}" if _IDENT.match(key) and key not in RESERVED else f"[{rego_literal(key)}]"
    return out


def _yaml_value(text: str) -> str:
    return text if _PLAIN_YAML.match(text) else rego_literal(text)


def _regex_literal(pattern: str) -> str:
    return f"`{pattern}`" if "`" not in pattern else rego_literal(pattern)


@dataclass
class _Writer:
    policy: Policy
    chunks: list[str] = field(default_factory=list)
    helpers: set[str] = field(default_factory=set)

    def metadata(self, title: str, description: str, line: int, **custom: str) -> str:
        lines = ["# METADATA", f"# title: {_yaml_value(title)}", f"# description: {rego_literal(description)}"]
        lines.append("# custom:")
        lines.append(f"#   source: {_yaml_value(f'{self.policy.source}:{line}')}")
        for key, value in custom.items():
            lines.append(f"#   {key}: {_yaml_value(value)}")
        return "\n".join(lines) + "\n"

    def emit(self, text: str) -> None:
        self.chunks.append(text)


def _violation(rule_order: int, rule_name: str, message: str) -> str:
    return f'{{"order": {rule_order}, "rule": {rego_literal(rule_name)}, "message": {message}}}'


def _body(lines: list[str]) -> str:
    if not lines:
        return ""
    return " if {\n" + "".join(f"\t{line}\n" for line in lines) + "}"


def _tool_test(rule: Rule) -> list[str]:
    return [] if rule.tool == WILDCARD else [f"input.tool.name == {rego_literal(rule.tool)}"]


def _target(condition: Condition) -> str:
    keys = condition.arg_path
    if keys is not None:
        return ref(INPUT_ARGS, keys)
    claims = condition.principal_path
    if claims is not None:
        return ref(INPUT_PRINCIPAL, claims)
    counter = condition.counter
    assert counter is not None
    return ref("input.state", counter)


def condition_lines(condition: Condition, locals_taken: set[str], writer: _Writer) -> list[str]:
    """Rego expressions that all hold exactly when the condition passes."""
    target = _target(condition)
    value, op = condition.value, condition.op
    if op == "eq":
        return [f"{target} == {rego_literal(value)}"]
    if op == "neq":
        return [f"{target} != {rego_literal(value)}"]
    if op == "in":
        return [f"{target} in {rego_literal(value)}"]
    if op == "not_in":
        last = (condition.arg_path or condition.principal_path or condition.counter or ("value",))[-1]
        base = re.sub(r"[^a-z0-9_]+", "_", last.lower()).strip("_") or "arg"
        name = f"{base}_value"
        n = 2
        while name in locals_taken:
            name, n = f"{base}_value_{n}", n + 1
        locals_taken.add(name)
        return [f"{name} := {target}", f"not {name} in {rego_literal(value)}"]
    if op in ("lt", "lte", "gt", "gte"):
        symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return [f"is_number({target})", f"{target} {symbol} {rego_literal(value)}"]
    if op == "regex":
        assert isinstance(value, str)
        return [f"is_string({target})", f"regex.match({_regex_literal(value)}, {target})"]
    if op == "contains":
        if isinstance(value, str):
            writer.helpers.add(CONTAINS_HELPER)
            return [f"contains_value({target}, {rego_literal(value)})"]
        return [f"is_array({target})", f"{rego_literal(value)} in {target}"]
    # exists
    if value:
        return [f"{target} != null"]
    keys = condition.arg_path
    base, path = (INPUT_ARGS, list(keys)) if keys is not None else ("input.state", list(condition.counter or ()))
    if condition.principal_path is not None:
        base, path = "input", ["principal", *condition.principal_path]  # also when input.principal is absent
    return [f"object.get({base}, {rego_literal(path)}, null) == null"]


def own_limit(rule: Rule) -> tuple[float | None, list[Condition]]:
    """Split a rule's conditions: the limit on its own counter, and the rest."""
    if rule.counter is None:
        return None, list(rule.conditions)
    own = (rule.scope, rule.counter.name)
    limit: float | None = None
    rest: list[Condition] = []
    for condition in rule.conditions:
        if condition.counter == own and condition.op in ("lte", "lt"):
            assert isinstance(condition.value, int | float)
            bound = condition.value if condition.op == "lte" else condition.value - 1
            limit = bound if limit is None else min(limit, bound)
        else:
            rest.append(condition)
    return limit, rest


def approval_timeout_seconds(rule: Rule) -> float:
    """The seconds a person has to answer (and an approval lasts): ``approval_timeout``, else 5 minutes."""
    text = rule.approval_timeout or DEFAULT_APPROVAL_TIMEOUT
    for unit, scale in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            seconds = int(text[: -len(unit)]) * scale
            return int(seconds) if seconds == int(seconds) else seconds
    raise ValueError(f"not a duration: {text!r}")


def _approval_rego(writer: _Writer, rule: Rule, meta_custom: dict[str, str]) -> None:
    """A ``require_approval`` rule becomes an approval request, which the gate turns into an obligation."""
    message = (
        rego_literal(rule.on_deny)
        if rule.on_deny is not None
        else 'sprintf("Tool %q requires a person\'s approval", [input.tool.name])'
    )
    shown = rule.on_deny or "requires a person's approval"
    lines = _tool_test(rule)
    taken: set[str] = set()
    for condition in rule.conditions:
        lines += condition_lines(condition, taken, writer)
    timeout = approval_timeout_seconds(rule)
    request = (
        f'{{"order": {rule.order}, "rule": {rego_literal(rule.name)}, "message": {message}, '
        f'"timeout": {rego_literal(timeout)}}}'
    )
    writer.emit(
        writer.metadata(rule.name, shown, rule.mark.line, **meta_custom)
        + f"approvals contains {request}"
        + _body(lines)
    )


def _rule_rego(writer: _Writer, rule: Rule) -> None:
    meta_custom = {"tool": rule.tool, "action": rule.action}
    title = rule.name
    if rule.action == "deny":
        writer.emit(
            writer.metadata(title, rule.message, rule.mark.line, **meta_custom)
            + f"deny contains {_violation(rule.order, rule.name, rego_literal(rule.message))}"
            + _body(_tool_test(rule))
        )
        return
    if rule.action == "require_approval":
        _approval_rego(writer, rule, meta_custom)
        return

    limit, conditions = own_limit(rule)
    counter = rule.counter
    passes: list[str] = []
    taken: set[str] = set()
    for condition in conditions:
        passes += condition_lines(condition, taken, writer)
    cost = "1"
    if counter is not None:
        cost = rego_literal(counter.increment)
        if counter.increment_from is not None:
            cost = ref(INPUT_ARGS, counter.increment_from)
            argument = ".".join(counter.increment_from)
            message = f'argument "{argument}" must be a positive number: it counts against "{counter.name}"'
            writer.emit(
                writer.metadata(title, message, rule.mark.line, **meta_custom)
                + f"deny contains {_violation(rule.order, rule.name, rego_literal(message))}"
                + _body([*_tool_test(rule), f"not {rule.ident}_cost_valid"])
            )
            writer.emit(
                f"# {rule.ident}_cost_valid holds when the call says how much it adds to {counter.name}.\n"
                f"{rule.ident}_cost_valid" + _body([f"is_number({cost})", f"{cost} > 0"])
            )
    if passes:
        helper = f"{rule.ident}_passes"
        writer.emit(
            writer.metadata(title, rule.message, rule.mark.line, **meta_custom)
            + f"deny contains {_violation(rule.order, rule.name, rego_literal(rule.message))}"
            + _body([*_tool_test(rule), f"not {helper}"])
        )
        writer.emit(f"# {helper} holds when every condition of {rule.name} holds.\n{helper}" + _body(passes))

    if rule.required_args or rule.schema:
        _validation_rego(writer, rule)

    declaration = None
    if rule.rate_limit is not None:
        limit_message = rule.on_deny or (
            f"Rate limit of {rule.rate_limit.limit} per {rule.rate_limit.window} reached. Try again later."
        )
        declaration = (
            f"{rule.scope}/_rate_{rule.rate_limit.window}",
            rego_literal(rule.rate_limit.limit),
            rule.rate_limit.window,
            "1",
            limit_message,
        )
    elif counter is not None:
        shown_limit = "no limit" if limit is None else f"{limit:g}"
        limit_message = rule.on_deny or (
            f'Limit of {shown_limit} per {counter.window} on counter "{counter.name}" reached. Try again later.'
        )
        declaration = (
            f"{rule.scope}/{counter.name}",
            rego_literal(limit),
            counter.window,
            cost,
            limit_message,
        )
    if declaration is not None:
        key, limit_text, window, cost_text, message = declaration
        key_text = rego_literal(key)
        if rule.per_principal:
            # One counter per caller; a call without a principal id shares the "_anonymous" one, still limited.
            key_text = f'concat("/", [{key_text}, "principal", object.get(input, ["principal", "id"], "_anonymous")])'
        writer.emit(
            writer.metadata(title, message, rule.mark.line, **meta_custom)
            + "rate_limits contains "
            + f'{{"key": {key_text}, "limit": {limit_text}, "window": {rego_literal(window)}, '
            + f'"cost": {cost_text}, "rule": {rego_literal(rule.name)}, "message": {rego_literal(message)}}}'
            + _body(_tool_test(rule))
        )


def _validation_rego(writer: _Writer, rule: Rule) -> None:
    tool = _tool_test(rule)
    meta = {"tool": rule.tool, "action": rule.action}
    prefix = f"{rule.on_deny}: " if rule.on_deny else ""
    writer.emit(
        writer.metadata(rule.name, f"{prefix}{UNKNOWN_SCHEMA}", rule.mark.line, **meta)
        + f"deny contains {_violation(rule.order, rule.name, rego_literal(prefix + UNKNOWN_SCHEMA))}"
        + _body([*tool, f"not {INPUT_SCHEMA}"])
    )
    if rule.required_args:
        writer.helpers.add(PRESENT_HELPER)
        message = f'sprintf("{_go_escape(prefix)}missing required argument %q", [name])'
        writer.emit(
            writer.metadata(rule.name, f"{prefix}missing required argument <name>", rule.mark.line, **meta)
            + f"deny contains {_violation(rule.order, rule.name, message)}"
            + _body(
                [
                    *tool,
                    f"some name in {INPUT_SCHEMA}.required",
                    f"not argument_present({INPUT_ARGS}, name)",
                ]
            )
        )
    if rule.schema:
        message = f'sprintf("{_go_escape(prefix)}argument %s is invalid: %s", [problem.field, problem.desc])'
        writer.emit(
            writer.metadata(rule.name, f"{prefix}argument <field> is invalid: <why>", rule.mark.line, **meta)
            + f"deny contains {_violation(rule.order, rule.name, message)}"
            + _body(
                [
                    *tool,
                    f"[matches, problems] := json.match_schema({INPUT_ARGS}, {INPUT_SCHEMA})",
                    "not matches",
                    "some problem in problems",
                ]
            )
        )


def _go_escape(text: str) -> str:
    """Text placed inside a Rego string that is also a sprintf format."""
    return json.dumps(text.replace("%", "%%"), ensure_ascii=False)[1:-1]


def generate_rego(policy: Policy) -> str:
    """The Rego source of a policy's package; deterministic for a given policy."""
    writer = _Writer(policy)
    header = [
        "# METADATA",
        f"# title: {_yaml_value(policy.description or policy.server_id)}",
        f"# description: {rego_literal(f'Converted by regogate from {policy.source}; convert again, do not edit.')}",
        "# custom:",
        f"#   source: {_yaml_value(policy.source)}",
        f"#   server_id: {policy.server_id}",
        f"#   default: {policy.default}",
        f"package {package_name(policy)}",
        "",
        "",
    ]
    listed = rego_literal(sorted(policy.listed)) if policy.listed else "[]"
    writer.emit(
        f"# Tools listed under `tools`.\nlisted_tools := {{{listed[1:-1]}}}"
        if policy.listed
        else "# Tools listed under `tools`.\nlisted_tools := set()"
    )
    named = sorted(name for name in policy.hide if name != WILDCARD)
    hidden = f"{{{rego_literal(named)[1:-1]}}}" if named else "set()"
    writer.emit(f"# Tools named under `hide`.\nhidden_tools := {hidden}")
    writer.emit(f"hides_all := {'true' if WILDCARD in policy.hide else 'false'}")
    if policy.hide:
        line = policy.hide_mark.line if policy.hide_mark else 1
        condition = "hides_all" if WILDCARD in policy.hide else "input.tool.name in hidden_tools"
        writer.emit(
            writer.metadata("hide", 'Tool "<name>" is hidden by policy', line)
            + "deny contains "
            + _violation(0, "hide", 'sprintf("Tool %q is hidden by policy", [input.tool.name])')
            + _body([condition])
        )
    if policy.default == "deny":
        line = policy.default_mark.line if policy.default_mark else 1
        writer.emit(
            writer.metadata("default", 'Tool "<name>" is not permitted by policy', line)
            + "deny contains "
            + _violation(1, "default", 'sprintf("Tool %q is not permitted by policy", [input.tool.name])')
            + _body(["not input.tool.name in listed_tools"])
        )
    for rule in policy.rules:
        _rule_rego(writer, rule)
    body = "\n\n".join(writer.chunks)
    helpers = "\n".join(sorted(writer.helpers))
    text = "\n".join(header) + body + ("\n\n" + helpers if helpers else "")
    return text.rstrip("\n") + "\n"
