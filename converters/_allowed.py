"""Write a policy's ``allowed_call``: the gate's decision for each call the policy lets through as it stands.

The gate reaches it with one lookup, and OPA's rule index picks the tool's rule by ``input.tool.name``,
so an allowed call costs one rule of the policy instead of its whole ``deny``, ``approvals`` and
``rate_limits`` sets (the gate's generic path). A rule is written only where the generator can tell, from
the YAML, exactly what the generic path would return when the rule's body holds: the call passes every
rule of its tool and of the wildcard, is neither hidden nor unlisted under ``default: deny``, and asks
nobody's approval. Anything else (a ``deny`` or ``require_approval`` rule, a hidden tool, limits whose
order could depend on the caller) gets no rule, and the gate takes the generic path for it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from regogate.converters._conditions import INPUT_ARGS, Helpers, condition_lines, ref, rego_literal
from regogate.converters._model import Policy, Rule
from regogate.core import WILDCARD

__all__ = ["AllowedCall", "allowed_calls", "amount_checks", "limit_declaration"]

INPUT_SCHEMA = "input.tool.input_schema"
#: Go's int64 ends here; a larger amount cannot be counted.
MAX_AMOUNT = 9223372036854775807
#: The decision of an allowed call that declares no limits (the gate's own literal).
_ALLOWED = '"allow": true, "reasons": []'
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-/\[\] ]*$")


def amount_checks(rule: Rule) -> list[str]:
    """Expressions that hold when the rule's ``increment_from`` argument is a countable amount."""
    assert rule.counter is not None and rule.counter.increment_from is not None
    argument = ref(INPUT_ARGS, rule.counter.increment_from)
    return [f"is_number({argument})", f"{argument} > -1", f"{argument} < {MAX_AMOUNT}"]


def limit_declaration(rule: Rule) -> str | None:
    """The rate-limit declaration a call under this rule carries, as a Rego object; None without a limit."""
    counter, limit = rule.counter, rule.limit
    if counter is None or limit is None:
        return None
    bound, exclusive = limit
    cost = rego_literal(counter.increment)
    if counter.increment_from is not None:
        cost = f"floor(abs({ref(INPUT_ARGS, counter.increment_from)}))"
    key = rego_literal(f"{rule.scope}/{counter.name}")
    if rule.per_principal:
        # One counter per caller; a call without a principal id shares the "_anonymous" one, still limited.
        key = f'concat("/", [{key}, "principal", object.get(input, ["principal", "id"], "_anonymous")])'
    return (
        f'{{"key": {key}, "limit": {rego_literal(bound)}, "exclusive": {rego_literal(exclusive)}, '
        f'"window": {rego_literal(counter.window)}, "cost": {cost}, "rule": {rego_literal(rule.name)}, '
        f'"message": {rego_literal(rule.limit_message)}}}'
    )


def _passing_lines(rule: Rule, taken: set[str], helpers: Helpers) -> list[str]:
    """Expressions under which none of the rule's denials applies (a sufficient condition, not always necessary)."""
    lines: list[str] = []
    for condition in rule.conditions:
        lines += condition_lines(condition, taken, helpers)
    if rule.required_args or rule.schema:
        lines.append(INPUT_SCHEMA)
    if rule.required_args:
        # object.get: a schema that is not an object has no required names, as the deny rule reads it.
        lines.append(
            f'every name in object.get(input.tool, ["input_schema", "required"], []) {{\n'
            f"\t\targument_present({INPUT_ARGS}, name)\n\t}}"
        )
    if rule.schema:
        valid = _local("schema_valid", taken)
        lines += [f"[{valid}, _] := json.match_schema({INPUT_ARGS}, {INPUT_SCHEMA})", valid]
    if rule.counter is not None and rule.counter.increment_from is not None:
        lines += amount_checks(rule)
    return lines


def _static_key(rule: Rule) -> str:
    assert rule.counter is not None
    return f"{rule.scope}/{rule.counter.name}"


def _ordered_limits(rules: list[Rule]) -> list[str] | None:
    """The declarations in the gate's order (by key); None when a caller's id could change that order."""
    limited = sorted((r for r in rules if limit_declaration(r) is not None), key=_static_key)
    keys = [_static_key(r) for r in limited]
    # A per-principal key is <static key>/principal/<id>: its place is fixed unless one key starts another.
    for first, later in itertools.pairwise(keys):
        if later.startswith(first):
            return None
    return [declaration for r in limited if (declaration := limit_declaration(r)) is not None]


def _comment(name: str) -> str:
    return f"# {name}" if _PLAIN.match(name) else f"# {rego_literal(name)}"


def _local(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


@dataclass(frozen=True)
class AllowedCall:
    """One ``allowed_call`` rule: the tool it decides (None: any unlisted tool), its YAML line, rules and Rego."""

    tool: str | None
    line: int
    rules: tuple[Rule, ...]
    rego: str

    @property
    def limit_keys(self) -> list[str]:
        """The keys of the declared limits in the decision's order, without a per-principal suffix."""
        return sorted(_static_key(r) for r in self.rules if r.limit is not None and r.counter is not None)


def _allowed_rule(selector: list[str], rules: list[Rule], helpers: Helpers) -> str | None:
    if any(r.action in ("deny", "require_approval") for r in rules):
        return None
    limits = _ordered_limits(rules)
    if limits is None:
        return None
    body = list(selector)
    taken: set[str] = set()
    for rule in rules:
        lines = _passing_lines(rule, taken, helpers)
        if lines:
            body += ["", _comment(rule.name), *lines]  # opa fmt sets a comment off with a blank line
    head = f'allowed_call := {{{_ALLOWED}, "rate_limits": [{", ".join(limits)}]}}'
    if not body:
        return head
    return head + " if {\n" + "".join(f"\t{line}\n" if line else "\n" for line in body) + "}"


def allowed_calls(policy: Policy, helpers: Helpers) -> list[AllowedCall]:
    """One ``allowed_call`` rule per tool whose decision the YAML fixes, and one for unlisted tools."""
    if WILDCARD in policy.hide:
        return []
    wildcard = [r for r in policy.rules if r.tool == WILDCARD]
    found: list[AllowedCall] = []
    for tool in policy.tools:
        if tool.name == WILDCARD or tool.name in policy.hide:
            continue
        rules = [r for r in policy.rules if r.tool == tool.name] + wildcard
        rego = _allowed_rule([f"input.tool.name == {rego_literal(tool.name)}"], rules, helpers)
        if rego is not None:
            found.append(AllowedCall(tool.name, tool.mark.line, tuple(rules), rego))
    if policy.default == "allow":
        selector = ["not input.tool.name in listed_tools"] if policy.listed else []
        if policy.hide:
            selector.append("not input.tool.name in hidden_tools")
        rego = _allowed_rule(selector, wildcard, helpers)
        if rego is not None:
            found.append(
                AllowedCall(None, policy.default_mark.line if policy.default_mark else 1, tuple(wildcard), rego)
            )
    return found
