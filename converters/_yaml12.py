"""Read policies as YAML 1.2 (core schema), as Intercept's yaml.v3 does, on top of PyYAML's YAML 1.1 parser.

PyYAML parses YAML 1.2 syntax fine but resolves plain scalars by YAML 1.1 rules: ``12:00`` becomes
720, ``NO``/``yes``/``on`` booleans, ``1_000`` an int, ``010`` octal, and ``0o17`` fails. ``Yaml12Loader``
resolves plain scalars by the 1.2 core schema instead (null, true/false, decimal/0o/0x ints,
floats; anything else a string), keeping PyYAML's marks for ``file:line:column``.
``yaml11_differences`` names each plain scalar a YAML 1.1 reader would take differently.

PyYAML is kept rather than ruamel.yaml (which reads 1.2 natively): only the resolver differs, PyYAML
is already the project's parser everywhere, and it is the better-kept, smaller dependency.
"""

from __future__ import annotations

import math
import re
from typing import Final

import yaml

__all__ = ["Yaml12Loader", "yaml11_differences"]

_CORE: Final[list[tuple[str, re.Pattern[str], str]]] = [
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    ("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
]


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema for plain scalars."""


# A fresh table: the YAML 1.1 resolvers SafeLoader inherits must not apply.
Yaml12Loader.yaml_implicit_resolvers = {}


for _tag, _pattern, _first in _CORE:
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, list(_first))
# An empty plain scalar has no first character; PyYAML looks it up under None.
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:null", _CORE[0][1], [None])


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


_UNREADABLE = object()


def _value(loader: yaml.SafeLoader, node: yaml.ScalarNode, tag: str) -> object:
    copy = yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
    try:
        return loader.construct_object(copy, deep=True)
    except (yaml.YAMLError, ValueError):
        return _UNREADABLE


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _shown(value: object) -> str:
    if value is _UNREADABLE:
        return "an error"
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"the number {value!r}"


def yaml11_differences(root: yaml.Node | None) -> list[tuple[yaml.Node, str]]:
    """Each plain scalar whose value differs between YAML 1.2 (used) and YAML 1.1, with a warning text."""
    found: list[tuple[yaml.Node, str]] = []
    old, new = yaml.SafeLoader(""), Yaml12Loader("")
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                stack += [value, key]
        elif isinstance(node, yaml.SequenceNode):
            stack += reversed(node.value)
        elif isinstance(node, yaml.ScalarNode) and node.style is None:
            tag11 = old.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
            tag12 = new.resolve(yaml.ScalarNode, node.value, (True, False))  # type: ignore[no-untyped-call]
            v11, v12 = _value(old, node, tag11), _value(new, node, tag12)
            if not _same(v11, v12):
                found.append(
                    (
                        node,
                        f"{node.value} is {_shown(v12)} in YAML 1.2 (how regogate and Intercept read it) "
                        f"but {_shown(v11)} in YAML 1.1; quote it if you mean the text",
                    )
                )
    return found
