"""Read one rule of a policy: its action, limit, counter, conditions and validation, checking each."""

from __future__ import annotations

import difflib
import re
from typing import cast

import re2
import yaml

from regogate.converters._model import (
    ACTIONS,
    GLOBAL_SCOPE,
    NEGATIVE_OPERATORS,
    OPERATORS,
    Action,
    Condition,
    Counter,
    Operator,
    RateLimit,
    Rule,
    snake_case,
)
from regogate.converters._nodes import Node, NodeReader, kind_of, mark_of
from regogate.core import WILDCARD, WINDOWS, Window

RULE_KEYS = (
    "name",
    "action",
    "on_deny",
    "rate_limit",
    "conditions",
    "state",
    "validate",
    "approval_timeout",
    "per",
)
CONDITION_KEYS = ("path", "op", "value")
STATE_KEYS = ("counter", "window", "increment", "increment_from")
VALIDATE_KEYS = ("required_args", "schema")
NUMERIC_OPS = ("lt", "lte", "gt", "gte")

_RATE_LIMIT = re.compile(r"^\s*(\+?\d+)\s*/\s*([A-Za-z]+)\s*$")
_DURATION = re.compile(r"^\d+(ms|s|m|h)$")
_COUNTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class RuleReader(NodeReader):
    """Reads the rules under ``tools.<tool>.rules``."""

    def load_rule(self, node: Node, where: str, tool: str, index: int) -> Rule | None:
        problems_before = len(self.problems)
        fields = self.mapping(node, where, RULE_KEYS, "a rule")
        if not isinstance(node, yaml.MappingNode):
            return None
        name = f"{tool}[{index}]"
        ident = snake_case(f"{'all_tools' if tool == WILDCARD else tool}_{index}")
        if "name" in fields:
            given = self.string(fields["name"], f"{where}.name", "a rule name")
            if given is not None:
                name, ident = given, snake_case(given)
        action: Action = "evaluate"
        if "action" in fields:
            raw = self.scalar(fields["action"]) if isinstance(fields["action"], yaml.ScalarNode) else None
            if raw in ACTIONS:
                action = raw
            else:
                hint = difflib.get_close_matches(str(raw), ACTIONS, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                self.problem(
                    fields["action"],
                    f"{where}.action",
                    f"unknown action {self.describe(fields['action'])}; expected one of: "
                    f"{', '.join(ACTIONS)}{suggestion}",
                )
        on_deny = self.string(fields["on_deny"], f"{where}.on_deny", "on_deny") if "on_deny" in fields else None
        rate_limit = (
            self.load_rate_limit(fields["rate_limit"], f"{where}.rate_limit") if "rate_limit" in fields else None
        )
        counter = self.load_counter(fields["state"], f"{where}.state") if "state" in fields else None
        conditions: list[Condition] = []
        if "conditions" in fields:
            cnode = fields["conditions"]
            if not isinstance(cnode, yaml.SequenceNode):
                self.problem(cnode, f"{where}.conditions", f"conditions must be a list, not {kind_of(cnode)}")
            else:
                for j, item in enumerate(cnode.value):
                    condition = self.load_condition(item, f"{where}.conditions[{j}]")
                    if condition is not None:
                        conditions.append(condition)
        required_args = schema = False
        if "validate" in fields:
            vfields = self.mapping(fields["validate"], f"{where}.validate", VALIDATE_KEYS, "validate")
            if "required_args" in vfields:
                required_args = bool(
                    self.boolean(vfields["required_args"], f"{where}.validate.required_args", "required_args")
                )
            if "schema" in vfields:
                schema = bool(self.boolean(vfields["schema"], f"{where}.validate.schema", "schema"))
        approval_timeout = None
        if "approval_timeout" in fields:
            tnode = fields["approval_timeout"]
            raw_timeout = self.scalar(tnode) if isinstance(tnode, yaml.ScalarNode) else None
            if isinstance(raw_timeout, int) and not isinstance(raw_timeout, bool) and raw_timeout > 0:
                approval_timeout = f"{raw_timeout}s"
            elif isinstance(raw_timeout, str) and _DURATION.match(raw_timeout.strip()):
                approval_timeout = raw_timeout.strip()
            else:
                self.problem(
                    tnode,
                    f"{where}.approval_timeout",
                    f"approval_timeout must be a duration such as 30s, 5m or 1h, not {self.describe(tnode)}",
                )
            if action != "require_approval":
                self.problem(
                    tnode,
                    f"{where}.approval_timeout",
                    "approval_timeout only applies to action: require_approval",
                )

        # Combinations that make no sense, each with its own message.
        if action == "deny":
            for key in ("conditions", "rate_limit", "state", "validate"):
                if key in fields:
                    self.problem(
                        fields[key],
                        f"{where}.{key}",
                        f"a deny rule always denies, so {key} has no effect; "
                        "use action: evaluate for a conditional rule",
                    )
        if action == "require_approval":
            for key in ("rate_limit", "state", "validate"):
                if key in fields:
                    self.problem(
                        fields[key],
                        f"{where}.{key}",
                        f"{key} cannot be combined with action: require_approval",
                    )
        if rate_limit is not None:
            for key in ("conditions", "state"):
                if key in fields:
                    self.problem(
                        fields[key],
                        f"{where}.{key}",
                        f"rate_limit cannot be combined with {key}; put the limit in a rule of its own",
                    )
        per_principal = False
        if "per" in fields:
            pnode = fields["per"]
            if (self.scalar(pnode) if isinstance(pnode, yaml.ScalarNode) else None) != "principal":
                self.problem(pnode, f"{where}.per", f"per must be principal, not {self.describe(pnode)}")
            elif rate_limit is None:
                self.problem(pnode, f"{where}.per", "per: principal goes with rate_limit")
            else:
                per_principal = True
        if len(self.problems) > problems_before:
            return None
        if action == "evaluate" and not conditions and rate_limit is None and not (required_args or schema):
            # Reported, yet the rule is kept so the checks across rules (names, counters) still run.
            self.problem(
                node,
                where,
                "evaluate rules must have at least one condition (write conditions, a rate_limit, or use action: deny)",
            )
        if rate_limit is not None:
            # Intercept's rewrite: an ordinary counter with its own lte condition, which other rules may read.
            scope = GLOBAL_SCOPE if tool == WILDCARD else tool
            counter_name = f"_rate_{rate_limit.window}"
            limit_mark = mark_of(fields["rate_limit"])
            counter = Counter(counter_name, rate_limit.window, 1, None, limit_mark)
            conditions = [Condition(f"state.{scope}.{counter_name}", "lte", rate_limit.limit, limit_mark)]
        return Rule(
            name=name,
            ident=ident,
            tool=tool,
            index=index,
            order=0,  # numbered once every tool is read
            action=action,
            on_deny=on_deny,
            rate_limit=rate_limit,
            conditions=tuple(conditions),
            counter=counter,
            required_args=required_args,
            schema=schema,
            approval_timeout=approval_timeout,
            per_principal=per_principal,
            mark=mark_of(node),
        )

    def load_rate_limit(self, node: Node, where: str) -> RateLimit | None:
        raw = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        match = _RATE_LIMIT.match(raw) if isinstance(raw, str) else None
        if match is None:
            self.problem(
                node,
                where,
                f"rate_limit must look like 30/hour (count/minute|hour|day), not {self.describe(node)}",
            )
            return None
        count, window = int(match.group(1)), match.group(2)
        if window not in WINDOWS:
            hint = difflib.get_close_matches(window, WINDOWS, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            self.problem(node, where, f"unknown rate_limit window {window!r}; expected minute, hour or day{suggestion}")
            return None
        if count == 0:
            self.problem(node, where, "rate_limit of 0 admits nothing; use action: deny to block the tool")
            return None
        return RateLimit(limit=count, window=cast(Window, window))

    def load_counter(self, node: Node, where: str) -> Counter | None:
        fields = self.mapping(node, where, STATE_KEYS, "state")
        if not isinstance(node, yaml.MappingNode):
            return None
        ok = True
        name = None
        if "counter" not in fields:
            self.problem(node, f"{where}.counter", "state needs a counter name")
            ok = False
        else:
            name = self.string(fields["counter"], f"{where}.counter", "counter")
            if name is not None and not _COUNTER_NAME.match(name):
                self.problem(fields["counter"], f"{where}.counter", f"counter {name!r} must be letters, digits, _ or -")
                ok = False
        window: Window | None = None
        if "window" not in fields:
            self.problem(node, f"{where}.window", "state needs a window: minute, hour or day")
            ok = False
        else:
            raw = self.scalar(fields["window"]) if isinstance(fields["window"], yaml.ScalarNode) else None
            if raw in WINDOWS:
                window = raw
            else:
                self.problem(
                    fields["window"],
                    f"{where}.window",
                    f"unknown window {self.describe(fields['window'])}; expected minute, hour or day",
                )
                ok = False
        increment = 1
        if "increment" in fields:
            raw_inc = self.scalar(fields["increment"]) if isinstance(fields["increment"], yaml.ScalarNode) else None
            if isinstance(raw_inc, bool) or not isinstance(raw_inc, int) or raw_inc < 0:
                self.problem(
                    fields["increment"],
                    f"{where}.increment",
                    "increment must be a whole number of at least 0 (0 means 1), "
                    f"not {self.describe(fields['increment'])}",
                )
                ok = False
            else:
                increment = raw_inc or 1  # as Intercept: 0 or nothing counts 1
        increment_from = None
        if "increment_from" in fields:
            raw_from = self.string(fields["increment_from"], f"{where}.increment_from", "increment_from")
            if raw_from is not None:
                keys = arg_keys(raw_from)
                if keys is None:
                    self.problem(
                        fields["increment_from"],
                        f"{where}.increment_from",
                        f"increment_from must name an argument as args.<name>, not {raw_from!r}",
                    )
                    ok = False
                else:
                    increment_from = keys
            else:
                ok = False
            if "increment" in fields:
                self.problem(
                    fields["increment_from"],
                    f"{where}.increment_from",
                    "give increment or increment_from, not both",
                )
                ok = False
        if not ok or name is None or window is None:
            return None
        return Counter(name=name, window=window, increment=increment, increment_from=increment_from, mark=mark_of(node))

    def load_condition(self, node: Node, where: str) -> Condition | None:
        fields = self.mapping(node, where, CONDITION_KEYS, "a condition")
        if not isinstance(node, yaml.MappingNode):
            return None
        for key in ("path", "op"):
            if key not in fields:
                self.problem(node, f"{where}.{key}", f"a condition needs {key}")
        if "path" not in fields or "op" not in fields:
            return None
        path = self.string(fields["path"], f"{where}.path", "path")
        if path is not None and arg_keys(path) is None and state_ref(path) is None and principal_keys(path) is None:
            self.problem(
                fields["path"],
                f"{where}.path",
                f"path must be args.<name>[.<name>…], state.<scope>.<counter> or principal.<claim>, not {path!r}",
            )
            path = None
        op_raw = self.scalar(fields["op"]) if isinstance(fields["op"], yaml.ScalarNode) else None
        op: Operator | None = None
        if op_raw in OPERATORS:
            op = op_raw
        else:
            hint = suggest_operator(str(op_raw))
            suggestion = f"; did you mean {hint!r}?" if hint else f"; expected one of: {', '.join(OPERATORS)}"
            self.problem(fields["op"], f"{where}.op", f"unknown operator {self.describe(fields['op'])}{suggestion}")
        if "value" not in fields:
            self.problem(node, f"{where}.value", "a condition needs value")
            return None
        vnode = fields["value"]
        value = self.value(vnode)
        if op is not None:
            self.check_value(op, value, vnode, f"{where}.value")
        if path is None or op is None:
            return None
        return Condition(path=path, op=op, value=value, mark=mark_of(node))

    def check_value(self, op: Operator, value: object, node: Node, where: str) -> None:
        shown = self.describe(node)
        if op in NUMERIC_OPS and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.problem(node, where, f"{op} compares numbers; value must be a number, not {shown}")
        elif op in ("in", "not_in") and not isinstance(value, list):
            self.problem(node, where, f"{op} needs a list of values, not {shown}")
        elif op == "exists" and not isinstance(value, bool):
            self.problem(node, where, f"exists takes true or false, not {shown}")
        elif op in ("regex", "not_regex"):
            if not isinstance(value, str):
                self.problem(node, where, f"{op} needs a pattern string, not {shown}")
            else:
                try:
                    re2.compile(value)
                except re2.error as exc:
                    self.problem(node, where, f"regex {value!r} does not compile as RE2: {exc}")


def _negative(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered.startswith(("not", "no_", "no-", "!", "ne", "nin", "n_"))


def suggest_operator(typed: str) -> str | None:
    """The closest known operator of the same polarity: never ``contains`` for ``not_contain``."""
    negative = _negative(typed)
    same_side = [op for op in OPERATORS if (op in NEGATIVE_OPERATORS) == negative]
    hint = difflib.get_close_matches(typed.strip().lower(), same_side, n=1, cutoff=0.5)
    return hint[0] if hint else None


def arg_keys(path: str) -> tuple[str, ...] | None:
    if not path.startswith("args."):
        return None
    keys = tuple(path.split(".")[1:])
    return keys if keys and all(k.strip() for k in keys) else None


def principal_keys(path: str) -> tuple[str, ...] | None:
    if not path.startswith("principal."):
        return None
    keys = tuple(path.split(".")[1:])
    return keys if keys and all(k.strip() for k in keys) else None


def state_ref(path: str) -> tuple[str, str] | None:
    if not path.startswith("state."):
        return None
    scope, _, counter = path[len("state.") :].rpartition(".")
    return (scope, counter) if scope and counter else None
