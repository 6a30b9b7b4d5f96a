"""Read YAML nodes with their places: typed reads that record a problem instead of raising."""

from __future__ import annotations

import difflib

import yaml

from regogate.converters._model import Mark
from regogate.converters._yaml12 import Yaml12Loader
from regogate.core import PolicySourceError, Problem

Node = yaml.Node


class NodeReader:
    """Reads values out of a composed YAML tree, collecting every problem with its line and column."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self._constructor = Yaml12Loader("")

    # --- reporting ---------------------------------------------------------
    def problem(self, node: Node | None, where: str, message: str) -> None:
        mark = mark_of(node) if node is not None else Mark(1, 1)
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
            self.problem(node, where, f"{what} must be a mapping, not {kind_of(node)}")
            return {}
        entries: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                self.problem(key_node, where, f"keys of {what} must be strings, not {key!r}")
                continue
            if key in entries:
                self.problem(key_node, join_path(where, key), f"duplicate key {key!r} in {what}")
                continue
            if allowed and key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(allowed)}"
                self.problem(key_node, join_path(where, key), f"unknown key {key!r} in {what}{suggestion}")
                continue
            entries[key] = value_node
        return entries

    def string(self, node: Node, where: str, what: str, *, empty_ok: bool = False) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str):
            self.problem(node, where, f"{what} must be a string, not {self.describe(node)}")
            return None
        if not empty_ok and not value.strip():
            self.problem(node, where, f"{what} must not be empty")
            return None
        return value

    def boolean(self, node: Node, where: str, what: str) -> bool | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            self.problem(node, where, f"{what} must be true or false, not {self.describe(node)}")
            return None
        return value

    def describe(self, node: Node) -> str:
        """A short description of a node's value for messages: its type and value."""
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node)
            if value is None:
                return "an empty value"
            return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)
        return kind_of(node)


def mark_of(node: Node | None) -> Mark:
    if node is None:
        return Mark(1, 1)
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def join_path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def kind_of(node: Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the value {node.value!r}" if node.value else "an empty value"
