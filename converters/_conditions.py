"""Write one YAML condition as Rego expressions that hold exactly when Intercept's operator would pass."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from regogate.converters._gotext import EqualForms, equal_forms
from regogate.converters._model import Condition

__all__ = ["Helpers", "condition_lines", "ref", "rego_literal"]

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

INPUT_ARGS = "input.tool.arguments"

COUNTER_HELPER = """\
# counter is a counter's value in its current window, as the proxy reads it; one never written is 0.
counter(scope, name) := object.get(input.state, [scope, name], 0)
"""

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

CONTAINS_LIKE_HELPER = """\
# contains_like holds when needle is a substring of a string haystack, or when a member of a list
# haystack equals needle as Intercept's eq does (one of the alternatives, or printed as one of the texts).
contains_like(haystack, needle, _, _) if {
\tis_string(haystack)
\tis_string(needle)
\tcontains(haystack, needle)
}

contains_like(haystack, _, alternatives, texts) if {
\tis_array(haystack)
\tsome item in haystack
\tone_of(item, alternatives, texts)
}
"""

MATCHES_HELPER = """\
# matches holds when value is a string the RE2 pattern matches anywhere.
matches(value, pattern) if {
\tis_string(value)
\tregex.match(pattern, value)
}
"""

ONE_OF_HELPER = """\
# one_of holds when value is one of the alternatives, or is a list or map that Go's %v prints as one
# of the texts (Intercept compares anything but two numbers by that text).
one_of(value, alternatives, _) if value in alternatives

one_of(value, _, texts) if go_printed(value) in texts
"""

GO_PRINTED_HELPER = """\
# go_printed is a list or map of scalars as Go's %v prints it: [a b], map[k:v] (keys sorted).
go_printed(value) := sprintf("[%s]", [concat(" ", [go_scalar(item) | some item in value])]) if {
\tis_array(value)
\tevery item in value {
\t\tgo_scalar(item)
\t}
}

go_printed(value) := sprintf("map[%s]", [concat(" ", pairs)]) if {
\tis_object(value)
\tpairs := [sprintf("%s:%s", [key, go_scalar(value[key])]) | some key in sort(object.keys(value))]
\tcount(pairs) == count(value)
}

# go_scalar is a string, number, boolean or null as Go's %v prints it (a JSON number is a float64).
go_scalar(value) := value if is_string(value)

go_scalar(value) := sprintf("%v", [value]) if is_boolean(value)

go_scalar(value) := "<nil>" if is_null(value)

go_scalar(value) := sprintf("%v", [value]) if {
\tis_number(value)
\tvalue != floor(value)
}

go_scalar(value) := format_int(value, 10) if {
\tis_number(value)
\tvalue == floor(value)
\tabs(value) < 1000000
}

# From 1e6 on, Go prints a whole float64 in exponent form: 1.5e+06.
go_scalar(value) := sprintf("%s%se+%02d", [go_sign(value), go_mantissa(trim_right(whole, "0")), count(whole) - 1]) if {
\tis_number(value)
\tvalue == floor(value)
\tabs(value) >= 1000000
\twhole := format_int(abs(value), 10)
}

go_sign(value) := "-" if value < 0

go_sign(value) := "" if value >= 0

go_mantissa(digits) := digits if count(digits) == 1

go_mantissa(digits) := concat(".", [substring(digits, 0, 1), substring(digits, 1, -1)]) if count(digits) > 1
"""


def rego_literal(value: object) -> str:
    """A JSON value written as a Rego term (JSON is valid Rego)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def ref(base: str, keys: Iterable[str]) -> str:
    """``base.a.b``, with brackets for keys that are not plain identifiers."""
    out = base
    for key in keys:
        out += f".{key}" if _IDENT.match(key) and key not in RESERVED else f"[{rego_literal(key)}]"
    return out


@dataclass
class Helpers:
    """The shared helper functions a policy's conditions use, written once at the end of the package."""

    texts: set[str] = field(default_factory=set)

    def need(self, *helpers: str) -> None:
        self.texts.update(helpers)


def _set(values: Iterable[object]) -> str:
    items = list(dict.fromkeys(rego_literal(v) for v in values))
    return "{" + ", ".join(items) + "}" if items else "set()"


def _merge(forms: Iterable[EqualForms]) -> EqualForms:
    values: list[object] = []
    texts: list[str] = []
    for form in forms:
        values += form.values
        texts += form.texts
    return EqualForms(tuple(values), tuple(dict.fromkeys(texts)))


def _is_one_of(term: str, forms: EqualForms, helpers: Helpers) -> str:
    """An expression that holds when ``term`` equals one of ``forms`` as Intercept's eq does."""
    if forms.texts:
        helpers.need(ONE_OF_HELPER, GO_PRINTED_HELPER)
        return f"one_of({term}, {_set(forms.values)}, {_set(forms.texts)})"
    unique = list(dict.fromkeys(rego_literal(v) for v in forms.values))
    if len(unique) == 1:
        return f"{term} == {unique[0]}"
    return f"{term} in {_set(forms.values)}"


def _target(condition: Condition, helpers: Helpers) -> str:
    keys = condition.arg_path
    if keys is not None:
        return ref(INPUT_ARGS, keys)
    claims = condition.principal_path
    if claims is not None:
        return ref("input.principal", claims)
    counter = condition.counter
    assert counter is not None
    helpers.need(COUNTER_HELPER)
    return f"counter({rego_literal(counter[0])}, {rego_literal(counter[1])})"


def _local(condition: Condition, taken: set[str]) -> str:
    last = (condition.arg_path or condition.principal_path or condition.counter or ("value",))[-1]
    base = re.sub(r"[^a-z0-9_]+", "_", last.lower()).strip("_") or "arg"
    name, n = f"{base}_value", 2
    while name in taken:
        name, n = f"{base}_value_{n}", n + 1
    taken.add(name)
    return name


def _negated(condition: Condition, taken: set[str], positive: str, target: str) -> list[str]:
    """A negative operator: the path must resolve, and the positive test must fail on its value."""
    local = _local(condition, taken)
    test = positive.replace(target, local, 1)
    if " == " in test and test.startswith(f"{local} == "):
        return [f"{local} := {target}", test.replace(" == ", " != ", 1)]
    return [f"{local} := {target}", f"not {test}"]


def condition_lines(condition: Condition, taken: set[str], helpers: Helpers) -> list[str]:
    """Rego expressions that all hold exactly when the condition passes (``taken``: local names in use)."""
    target = _target(condition, helpers)
    value, op = condition.value, condition.op
    if op in ("eq", "neq"):
        test = _is_one_of(target, equal_forms(value), helpers)
        return [test] if op == "eq" else _negated(condition, taken, test, target)
    if op in ("in", "not_in"):
        assert isinstance(value, list)
        test = _is_one_of(target, _merge(equal_forms(v) for v in value), helpers)
        return [test] if op == "in" else _negated(condition, taken, test, target)
    if op in ("lt", "lte", "gt", "gte"):
        symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return [f"is_number({target})", f"{target} {symbol} {rego_literal(value)}"]
    if op == "regex":
        assert isinstance(value, str)
        return [f"is_string({target})", f"regex.match({_regex_literal(value)}, {target})"]
    if op == "not_regex":
        assert isinstance(value, str)
        helpers.need(MATCHES_HELPER)
        local = _local(condition, taken)
        return [f"{local} := {target}", f"not matches({local}, {_regex_literal(value)})"]
    if op in ("contains", "not_contains"):
        forms = equal_forms(value)
        if isinstance(value, str) and forms.values == (value,) and not forms.texts:
            helpers.need(CONTAINS_HELPER)
            test = f"contains_value({target}, {rego_literal(value)})"
        else:
            helpers.need(CONTAINS_LIKE_HELPER, ONE_OF_HELPER, GO_PRINTED_HELPER)
            test = f"contains_like({target}, {rego_literal(value)}, {_set(forms.values)}, {_set(forms.texts)})"
        return [test] if op == "contains" else _negated(condition, taken, test, target)
    # exists: present and not null; a counter always exists (it reads 0 until written).
    if value:
        return [f"{target} != null"]
    keys = condition.arg_path
    if condition.principal_path is not None:  # also when input.principal is absent
        return [f"object.get(input, {rego_literal(['principal', *condition.principal_path])}, null) == null"]
    if keys is None:
        return [f"{target} == null"]
    return [f"object.get({INPUT_ARGS}, {rego_literal(list(keys))}, null) == null"]


def _regex_literal(pattern: str) -> str:
    return f"`{pattern}`" if "`" not in pattern else rego_literal(pattern)
