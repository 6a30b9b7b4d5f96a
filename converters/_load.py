"""Read an Intercept-style YAML policy and validate all of it, reporting every problem with its place."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal

import yaml

from regogate.converters._model import (
    GLOBAL_SCOPE,
    Mark,
    Policy,
    Rule,
    Tool,
    snake_case,
)
from regogate.converters._nodes import Node, kind_of, mark_of
from regogate.converters._rules import RuleReader
from regogate.converters._yaml12 import Yaml12Loader, yaml11_differences
from regogate.core import WILDCARD, PolicySourceError, Problem

TOP_KEYS = ("version", "description", "default", "hide", "tools")
TOOL_KEYS = ("rules",)

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


class _Loader(RuleReader):
    def __init__(self, text: str, source: str, server_id: str) -> None:
        super().__init__(source)
        self.text = text
        self.server_id = server_id

    # --- the document -------------------------------------------------------
    def load(self) -> Policy:
        try:
            root = yaml.compose(self.text, Loader=Yaml12Loader)
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
                        f"a policy must be a mapping at the top level, not {kind_of(root)}",
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
        warnings = [
            Problem(self.source, mark_of(node).line, mark_of(node).column, "", f"warning: {text}")
            for node, text in yaml11_differences(root)
        ]
        top = self.mapping(root, "", TOP_KEYS, "the policy")
        version = self.load_version(root, top)
        description = self.string(top["description"], "description", "description") if "description" in top else None
        default, default_mark = self.load_default(top)
        hide, hide_mark = self.load_hide(top)
        tools = self.load_tools(top)
        self.check_counters(tools)
        if self.problems:
            # The YAML 1.1 notes often explain an error (exists: yes is the string "yes"), so they come along.
            self.problems += warnings
            raise self.fail()
        return Policy(
            warnings=tuple(warnings),
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
            self.problem(node, "version", f'unsupported version {self.describe(node)}; only "1" is known')
        return "1"

    def load_default(self, top: dict[str, Node]) -> tuple[Literal["allow", "deny"], Mark | None]:
        if "default" not in top:
            return "allow", None
        node = top["default"]
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if value not in ("allow", "deny"):
            self.problem(node, "default", f"default must be allow or deny, not {self.describe(node)}")
            return "allow", mark_of(node)
        return value, mark_of(node)

    def load_hide(self, top: dict[str, Node]) -> tuple[tuple[str, ...], Mark | None]:
        if "hide" not in top:
            return (), None
        node = top["hide"]
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, "hide", f"hide must be a list of tool names, not {kind_of(node)}")
            return (), mark_of(node)
        names: list[str] = []
        for i, item in enumerate(node.value):
            name = self.string(item, f"hide[{i}]", "a hidden tool name")
            if name is None:
                continue
            if name in names:
                self.problem(item, f"hide[{i}]", f"tool {name!r} is hidden twice")
                continue
            names.append(name)
        return tuple(names), mark_of(node)

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
                self.problem(rules_node, f"{where}.rules", f"rules must be a list, not {kind_of(rules_node)}")
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
            tools.append(Tool(name=name, rules=tuple(rules), mark=mark_of(node)))
        return _number_rules(tools)

    def check_counters(self, tools: tuple[Tool, ...]) -> None:
        """Counters must be declared once per scope, and read only where declared."""
        declared: dict[tuple[str, str], str] = {}
        for tool in tools:
            for rule in tool.rules:
                names = [rule.counter.name] if rule.counter is not None else []
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
