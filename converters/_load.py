"""Read an Intercept-style YAML policy and validate all of it, reporting every problem with its place."""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path
from typing import Literal, cast

import re2
import yaml

from regogate.converters._model import (
    ACTIONS,
    GLOBAL_SCOPE,
    OPERATORS,
    WILDCARD,
    WINDOWS,
    Action,
    Condition,
    Counter,
    Mark,
    Operator,
    Policy,
    RateLimit,
    Rule,
    Tool,
    Window,
    snake_case,
)
from regogate.proxy._errors import PolicySourceError, Problem

TOP_KEYS = ("version", "description", "default", "hide", "tools")
TOOL_KEYS = ("rules",)
RULE_KEYS = (
    "name",
    "action",
    "on_deny",
    "rate_limit",
    "conditions",
    "state",
    "validate",
    "approval_timeout",
)
CONDITION_KEYS = ("path", "op", "value")
STATE_KEYS = ("counter", "window", "increment", "increment_from")
VALIDATE_KEYS = ("required_args", "schema")
NUMERIC_OPS = ("lt", "lte", "gt", "gte")

_RATE_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*([A-Za-z]+)\s*$")
_DURATION = re.compile(r"^\d+(ms|s|m|h)$")
_COUNTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_SERVER_ID = re.compile(r"^[a-z_][a-z0-9_]*$")


def load_policy(path: str | Path, *, server_id: str | None = None, source: str | None = None) -> Policy:
    """Read and validate a policy file.

    Raises:
        PolicySourceError: the file cannot be read or is not a valid policy; lists every problem.
    """
    shown = source if source is not None else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicySourceError([Problem(shown, 1, 1, "", f"cannot read the policy file: {reason}")]) from None
    return parse_policy(text, source=shown, server_id=server_id or default_server_id(shown))


def default_server_id(source: str) -> str:
    """The server id a policy file gets unless told otherwise: its file name as snake_case."""
    return snake_case(Path(source).stem)


def parse_policy(text: str, *, source: str, server_id: str) -> Policy:
    """Validate policy text; a pure function of its arguments.

    Raises:
        PolicySourceError: every problem found, sorted by place.
    """
    return _Loader(text, source, server_id).load()


Node = yaml.Node


class _Loader:
    def __init__(self, text: str, source: str, server_id: str) -> None:
        self.text = text
        self.source = source
        self.server_id = server_id
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    # --- reporting ---------------------------------------------------------
    def problem(self, node: Node | None, where: str, message: str) -> None:
        mark = _mark(node) if node is not None else Mark(1, 1)
        self.problems.append(Problem(self.source, mark.line, mark.column, where, message))

    def fail(self) -> PolicySourceError:
        ordered = sorted(set(self.problems), key=lambda p: (p.line, p.column, p.location, p.message))
        return PolicySourceError(ordered)

    # --- YAML helpers -------------------------------------------------------
    def scalar(self, node: Node) -> object:
        return self._constructor.construct_object(node, deep=True)

    def value(self, node: Node) -> object:
        if isinstance(node, yaml.MappingNode):
            return {str(self.scalar(k)): self.value(v) for k, v in node.value}
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item) for item in node.value]
        return self.scalar(node)

    def mapping(self, node: Node, where: str, allowed: tuple[str, ...], what: str) -> dict[str, Node]:
        """The entries of a mapping node, reporting unknown and duplicate keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, f"{what} must be a mapping, not {_kind(node)}")
            return {}
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                self.problem(key_node, where, f"keys of {what} must be strings, not {key!r}")
                continue
            if key in entries:
                self.problem(key_node, _join(where, key), f"duplicate key {key!r} in {what}")
                continue
            if allowed and key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(allowed)}"
                self.problem(key_node, _join(where, key), f"unknown key {key!r} in {what}{suggestion}")
                continue
            entries[key] = value_node
        return entries

    def string(self, node: Node, where: str, what: str, *, empty_ok: bool = False) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str):
            self.problem(node, where, f"{what} must be a string, not {_describe(self, node)}")
            return None
        if not empty_ok and not value.strip():
            self.problem(node, where, f"{what} must not be empty")
            return None
        return value

    def boolean(self, node: Node, where: str, what: str) -> bool | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            self.problem(node, where, f"{what} must be true or false, not {_describe(self, node)}")
            return None
        return value

    # --- the document -------------------------------------------------------
    def load(self) -> Policy:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            reason = getattr(exc, "problem", None) or str(exc)
            raise PolicySourceError([Problem(self.source, line, column, "", f"not valid YAML: {reason}")]) from None
        if root is None:
            raise PolicySourceError([Problem(self.source, 1, 1, "", "the policy file is empty")])
        if not isinstance(root, yaml.MappingNode):
            raise PolicySourceError(
                [
                    Problem(
                        self.source,
                        1,
                        1,
                        "",
                        f"a policy must be a mapping at the top level, not {_kind(root)}",
                    )
                ]
            )
        if not _SERVER_ID.match(self.server_id):
            self.problem(
                None,
                "",
                f"server id {self.server_id!r} must be lowercase letters, digits and underscores, "
                "starting with a letter (pass --server-id)",
            )
        top = self.mapping(root, "", TOP_KEYS, "the policy")
        version = self.load_version(root, top)
        description = self.string(top["description"], "description", "description") if "description" in top else None
        default, default_mark = self.load_default(top)
        hide, hide_mark = self.load_hide(top)
        tools = self.load_tools(top)
        self.check_counters(tools)
        if self.problems:
            raise self.fail()
        return Policy(
            source=self.source,
            server_id=self.server_id,
            version=version,
            description=description,
            default=default,
            default_mark=default_mark,
            hide=hide,
            hide_mark=hide_mark,
            tools=tools,
        )

    def load_version(self, root: Node, top: dict[str, Node]) -> str:
        if "version" not in top:
            self.problem(root, "version", 'version is required; write version: "1"')
            return "1"
        node = top["version"]
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if value not in ("1", 1):
            self.problem(node, "version", f'unsupported version {_describe(self, node)}; only "1" is known')
        return "1"

    def load_default(self, top: dict[str, Node]) -> tuple[Literal["allow", "deny"], Mark | None]:
        if "default" not in top:
            return "allow", None
        node = top["default"]
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if value not in ("allow", "deny"):
            self.problem(node, "default", f"default must be allow or deny, not {_describe(self, node)}")
            return "allow", _mark(node)
        return value, _mark(node)

    def load_hide(self, top: dict[str, Node]) -> tuple[tuple[str, ...], Mark | None]:
        if "hide" not in top:
            return (), None
        node = top["hide"]
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "hide", f"hide must be a list of tool names, not {_kind(node)}")
            return (), _mark(node)
        names: list[str] = []
        for i, item in enumerate(node.value):
            name = self.string(item, f"hide[{i}]", "a hidden tool name")
            if name is None:
                continue
            if name in names:
                self.problem(item, f"hide[{i}]", f"tool {name!r} is hidden twice")
                continue
            names.append(name)
        return tuple(names), _mark(node)

    def load_tools(self, top: dict[str, Node]) -> tuple[Tool, ...]:
        if "tools" not in top:
            return ()
        tools_node = top["tools"]
        if isinstance(tools_node, yaml.ScalarNode) and self.scalar(tools_node) is None:
            return ()
        entries = self.mapping(tools_node, "tools", (), "tools")
        tools: list[Tool] = []
        idents: dict[str, str] = {}
        names: dict[str, str] = {}
        for name, node in entries.items():
            where = f"tools.{name}"
            if not name.strip():
                self.problem(node, where, "a tool name must not be empty")
                continue
            if isinstance(node, yaml.ScalarNode) and self.scalar(node) is None:
                self.problem(node, where, f"tool {name!r} needs rules (write rules: [] to allow it with none)")
                continue
            fields = self.mapping(node, where, TOOL_KEYS, f"tool {name!r}")
            if "rules" not in fields:
                if isinstance(node, yaml.MappingNode):
                    self.problem(node, where, f"tool {name!r} needs rules (write rules: [] to allow it with none)")
                continue
            rules_node = fields["rules"]
            if isinstance(rules_node, yaml.ScalarNode) and self.scalar(rules_node) is None:
                rules_items: list[Node] = []
            elif not isinstance(rules_node, yaml.SequenceNode):
                self.problem(rules_node, f"{where}.rules", f"rules must be a list, not {_kind(rules_node)}")
                continue
            else:
                rules_items = list(rules_node.value)
            rules: list[Rule] = []
            for i, rule_node in enumerate(rules_items):
                rule = self.load_rule(rule_node, f"{where}.rules[{i}]", name, i)
                if rule is None:
                    continue
                previous = names.get(rule.name)
                if previous is not None:
                    self.problem(
                        rule_node,
                        f"{where}.rules[{i}]",
                        f"rule name {rule.name!r} is already used at {previous}",
                    )
                else:
                    names[rule.name] = f"{where}.rules[{i}]"
                    clash = idents.get(rule.ident)
                    if clash is not None:
                        self.problem(
                            rule_node,
                            f"{where}.rules[{i}]",
                            f"rule name {rule.name!r} becomes the Rego name {rule.ident!r}, "
                            f"which the rule at {clash} already has; rename one",
                        )
                    else:
                        idents[rule.ident] = f"{where}.rules[{i}]"
                rules.append(rule)
            tools.append(Tool(name=name, rules=tuple(rules), mark=_mark(node)))
        return _number_rules(tools)

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
                    f"unknown action {_describe(self, fields['action'])}; expected one of: "
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
                self.problem(cnode, f"{where}.conditions", f"conditions must be a list, not {_kind(cnode)}")
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
                    f"approval_timeout must be a duration such as 30s, 5m or 1h, not {_describe(self, tnode)}",
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
        if len(self.problems) > problems_before:
            return None
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
            mark=_mark(node),
        )

    def load_rate_limit(self, node: Node, where: str) -> RateLimit | None:
        raw = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        match = _RATE_LIMIT.match(raw) if isinstance(raw, str) else None
        if match is None:
            self.problem(
                node,
                where,
                f"rate_limit must look like 30/hour (count/minute|hour|day), not {_describe(self, node)}",
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
                    f"unknown window {_describe(self, fields['window'])}; expected minute, hour or day",
                )
                ok = False
        increment: float = 1
        if "increment" in fields:
            raw_inc = self.scalar(fields["increment"]) if isinstance(fields["increment"], yaml.ScalarNode) else None
            if isinstance(raw_inc, bool) or not isinstance(raw_inc, int | float) or raw_inc <= 0:
                self.problem(
                    fields["increment"],
                    f"{where}.increment",
                    f"increment must be a positive number, not {_describe(self, fields['increment'])}",
                )
                ok = False
            else:
                increment = raw_inc
        increment_from = None
        if "increment_from" in fields:
            raw_from = self.string(fields["increment_from"], f"{where}.increment_from", "increment_from")
            if raw_from is not None:
                keys = _arg_keys(raw_from)
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
        return Counter(name=name, window=window, increment=increment, increment_from=increment_from, mark=_mark(node))

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
        if path is not None and _arg_keys(path) is None and _state_ref(path) is None:
            self.problem(
                fields["path"],
                f"{where}.path",
                f"path must be args.<name>[.<name>…] or state.<scope>.<counter>, not {path!r}",
            )
            path = None
        op_raw = self.scalar(fields["op"]) if isinstance(fields["op"], yaml.ScalarNode) else None
        op: Operator | None = None
        if op_raw in OPERATORS:
            op = op_raw
        else:
            hint = difflib.get_close_matches(str(op_raw), OPERATORS, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(OPERATORS)}"
            self.problem(fields["op"], f"{where}.op", f"unknown operator {_describe(self, fields['op'])}{suggestion}")
        if "value" not in fields:
            self.problem(node, f"{where}.value", "a condition needs value")
            return None
        vnode = fields["value"]
        value = self.value(vnode)
        if op is not None:
            self.check_value(op, value, vnode, f"{where}.value")
            if path is not None and _state_ref(path) is not None and op in ("in", "not_in", "regex", "contains"):
                self.problem(fields["op"], f"{where}.op", f"a counter is a number; {op} does not apply to {path}")
        if path is None or op is None:
            return None
        return Condition(path=path, op=op, value=value, mark=_mark(node))

    def check_value(self, op: Operator, value: object, node: Node, where: str) -> None:
        shown = _describe(self, node)
        if op in NUMERIC_OPS and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.problem(node, where, f"{op} compares numbers; value must be a number, not {shown}")
        elif op in ("in", "not_in") and not isinstance(value, list):
            self.problem(node, where, f"{op} needs a list of values, not {shown}")
        elif op == "exists" and not isinstance(value, bool):
            self.problem(node, where, f"exists takes true or false, not {shown}")
        elif op == "contains" and isinstance(value, list | dict):
            self.problem(node, where, f"contains looks for one value (a substring or a list member), not {shown}")
        elif op == "regex":
            if not isinstance(value, str):
                self.problem(node, where, f"regex needs a pattern string, not {shown}")
            else:
                try:
                    re2.compile(value)
                except re2.error as exc:
                    self.problem(node, where, f"regex {value!r} does not compile as RE2: {exc}")

    def check_counters(self, tools: tuple[Tool, ...]) -> None:
        """Counters must be declared once per scope, and read only where declared."""
        declared: dict[tuple[str, str], str] = {}
        for tool in tools:
            for rule in tool.rules:
                names = []
                if rule.rate_limit is not None:
                    names.append(f"_rate_{rule.rate_limit.window}")
                if rule.counter is not None:
                    names.append(rule.counter.name)
                for counter in names:
                    key = (rule.scope, counter)
                    where = f"tools.{tool.name}.rules[{rule.index}]"
                    if key in declared:
                        node_mark = rule.counter.mark if rule.counter and rule.counter.name == counter else rule.mark
                        self.problems.append(
                            Problem(
                                self.source,
                                node_mark.line,
                                node_mark.column,
                                where,
                                f"counter {counter!r} of scope {rule.scope!r} is already declared at {declared[key]}; "
                                "each counter belongs to one rule",
                            )
                        )
                    else:
                        declared[key] = where
        for tool in tools:
            for rule in tool.rules:
                for j, condition in enumerate(rule.conditions):
                    ref = condition.counter
                    if ref is not None and ref not in declared:
                        self.problems.append(
                            Problem(
                                self.source,
                                condition.mark.line,
                                condition.mark.column,
                                f"tools.{tool.name}.rules[{rule.index}].conditions[{j}]",
                                f"no rule declares counter {ref[1]!r} in scope {ref[0]!r}; add a state block with "
                                f"counter: {ref[1]} to a rule of {_scope_owner(ref[0])}",
                            )
                        )


def _scope_owner(scope: str) -> str:
    return "the wildcard" if scope == GLOBAL_SCOPE else repr(scope)


def _number_rules(tools: list[Tool]) -> tuple[Tool, ...]:
    """Give rules their evaluation order: listed tools in file order, then the wildcard's rules.

    Orders 0 and 1 belong to ``hide`` and ``default: deny``, which come first.
    """
    order = 2
    numbered: dict[int, Tool] = {}
    for position, tool in sorted(enumerate(tools), key=lambda item: item[1].name == WILDCARD):
        rules = []
        for rule in tool.rules:
            rules.append(dataclasses.replace(rule, order=order))
            order += 1
        numbered[position] = dataclasses.replace(tool, rules=tuple(rules))
    return tuple(numbered[i] for i in range(len(tools)))


def _arg_keys(path: str) -> tuple[str, ...] | None:
    if not path.startswith("args."):
        return None
    keys = tuple(path.split(".")[1:])
    return keys if keys and all(k.strip() for k in keys) else None


def _state_ref(path: str) -> tuple[str, str] | None:
    if not path.startswith("state."):
        return None
    scope, _, counter = path[len("state.") :].rpartition(".")
    return (scope, counter) if scope and counter else None


def _mark(node: Node | None) -> Mark:
    if node is None:
        return Mark(1, 1)
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(node: Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}" if node.value else "an empty value"


def _describe(loader: _Loader, node: Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        value = loader.scalar(node)
        if value is None:
            return "an empty value"
        return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)
    return _kind(node)
