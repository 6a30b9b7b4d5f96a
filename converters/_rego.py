"""Turn a validated policy into one Rego v1 package that reads side by side with its YAML."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from regogate.converters._allowed import INPUT_SCHEMA, allowed_calls, amount_checks, limit_declaration
from regogate.converters._conditions import INPUT_ARGS, Helpers, condition_lines, rego_literal
from regogate.converters._gotext import go_quote
from regogate.converters._model import Policy, Rule
from regogate.core import WILDCARD

_PLAIN_YAML = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-/\[\]]*$")

INPUT_PRINCIPAL = "input.principal"
#: How long a person has to answer when a require_approval rule names no approval_timeout.
DEFAULT_APPROVAL_TIMEOUT = "5m"
#: Reasons found only after every rule passed (an amount that cannot be counted) sort after the rules'.
AMOUNT_ORDER = 1_000_000
UNKNOWN_SCHEMA = "cannot check the arguments: the input schema of this tool is unknown"

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


def _yaml_value(text: str) -> str:
    return text if _PLAIN_YAML.match(text) else rego_literal(text)


@dataclass
class _Writer:
    policy: Policy
    chunks: list[str] = field(default_factory=list)
    helpers: Helpers = field(default_factory=Helpers)

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
        lines += condition_lines(condition, taken, writer.helpers)
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

    passes: list[str] = []
    taken: set[str] = set()
    for condition in rule.conditions:
        passes += condition_lines(condition, taken, writer.helpers)
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
    if rule.counter is not None:
        _counter_rego(writer, rule)


def _counter_rego(writer: _Writer, rule: Rule) -> None:
    """What a call adds to the rule's counter, and the limit the proxy reserves against (if the rule has one)."""
    counter = rule.counter
    assert counter is not None
    meta_custom = {"tool": rule.tool, "action": rule.action}
    guard: list[str] = []
    if counter.increment_from is not None:
        shown = "args." + ".".join(counter.increment_from)
        message = (
            f"Internal policy error: {shown} must be a number of at least 0; "
            f'it is what a call adds to counter "{counter.name}" of rule {go_quote(rule.name)}'
        )
        counted = f"{rule.ident}_amount_known"
        # Intercept resolves the amount only once every rule passed, so this reason sorts after all of them.
        writer.emit(
            writer.metadata(rule.name, message, rule.mark.line, **meta_custom)
            + f"deny contains {_violation(AMOUNT_ORDER + rule.order, rule.name, rego_literal(message))}"
            + _body([*_tool_test(rule), f"not {counted}"])
        )
        writer.emit(
            f"# {counted} holds when {shown} is a number Intercept can count (a fraction counts its whole part).\n"
            f"{counted}" + _body(amount_checks(rule))
        )
        guard = [counted]
    declaration = limit_declaration(rule)
    if declaration is None:
        return
    writer.emit(
        writer.metadata(rule.name, rule.limit_message, rule.mark.line, **meta_custom)
        + f"rate_limits contains {declaration}"
        + _body([*_tool_test(rule), *guard])
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
        writer.helpers.need(PRESENT_HELPER)
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
    for allowed in allowed_calls(policy, writer.helpers):
        title = "allowed_call" if allowed.tool is None else f"allowed_call {allowed.tool}"
        what = "an unlisted tool" if allowed.tool is None else f"a call to {allowed.tool}"
        writer.emit(
            writer.metadata(title, f"The gate's decision for {what} that every rule lets through", allowed.line)
            + allowed.rego
        )
    body = "\n\n".join(writer.chunks)
    helpers = "\n".join(sorted(writer.helpers.texts))
    text = "\n".join(header) + body + ("\n\n" + helpers if helpers else "")
    return text.rstrip("\n") + "\n"
