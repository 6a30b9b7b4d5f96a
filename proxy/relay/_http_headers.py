"""The 2026-07-28 routing headers a request mirrors from its body: value encoding and ``Mcp-Param-*``.

A server (or a load balancer in front of it) may route on these headers instead of the body, and
the server refuses a request whose headers and body disagree. The bridge derives every one of them
from the very message it POSTs (the relay's own encoding of the message the policy decided on), and
a client on stdio has no way to add or change a header.

``Mcp-Param-<Token>`` comes from a tool's ``inputSchema``: a property reached from the root through
``properties`` alone and annotated ``"x-mcp-header": "<Token>"`` is mirrored when the call carries
a value for it. A schema whose annotations break the spec's rules (not a token, not on a string,
integer or boolean property, off the ``properties`` chain, a case-insensitive duplicate) gets no
headers, as a conforming client would send none.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping

PARAM_HEADER_PREFIX = "mcp-param-"
X_MCP_HEADER = "x-mcp-header"
MAX_TOOLS = 10_000
"""Tools whose header declarations are remembered; a server listing more gets headers for the first ones."""

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEADER_TYPES = frozenset({"string", "integer", "boolean"})
# JSON Schema keywords whose values are schemas (one, a list, or a name -> schema map). Walking them
# finds an annotation placed where no ``properties`` chain reaches, which makes the schema invalid.
_ONE_SCHEMA = frozenset(
    {
        "items",
        "contains",
        "additionalProperties",
        "unevaluatedItems",
        "unevaluatedProperties",
        "propertyNames",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    }
)
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAPS = frozenset({"patternProperties", "dependentSchemas", "$defs", "definitions"})

HeaderMap = dict[tuple[str, ...], str]
"""Argument path (``properties`` keys from the root) -> header token."""


def header_value(value: str) -> str:
    """A header value as the 2026-07-28 transport encodes it: verbatim if plain ASCII, else base64."""
    if value.isascii() and value.isprintable() and value == value.strip() and not value.startswith("=?base64?"):
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode()}?="


def _positions(schema: object) -> Iterator[tuple[tuple[str, ...] | None, dict[str, object]]]:
    """Every schema position with its ``properties`` path, ``None`` once another keyword was crossed."""
    stack: list[tuple[tuple[str, ...] | None, object]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield path, node
        properties = node.get("properties")
        if isinstance(properties, dict):
            stack.extend(((*path, key) if path is not None else None, sub) for key, sub in properties.items())
        for keyword, value in node.items():
            if keyword in _ONE_SCHEMA:
                stack.append((None, value))
            elif keyword in _SCHEMA_LISTS and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif keyword in _SCHEMA_MAPS and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())


def param_header_map(input_schema: object) -> HeaderMap:
    """The ``Mcp-Param-*`` declarations of a tool's ``inputSchema``; empty when there are none or any is invalid."""
    found: HeaderMap = {}
    seen: set[str] = set()
    for path, node in _positions(input_schema):
        if X_MCP_HEADER not in node:
            continue
        token = node[X_MCP_HEADER]
        if (
            not path
            or not isinstance(token, str)
            or not token
            or not set(token) <= _TOKEN_CHARS
            or not isinstance(kind := node.get("type"), str)
            or kind not in _HEADER_TYPES
            or token.lower() in seen
        ):
            return {}
        seen.add(token.lower())
        found[path] = token
    return found


def _rendered(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        try:
            return str(value)
        except ValueError:  # an integer past Python's digit limit: no header, as other clients do
            return None
    return None


def param_headers(declared: HeaderMap, arguments: object) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers for a call with ``arguments``: one per declared argument present and scalar."""
    headers: dict[str, str] = {}
    for path, token in declared.items():
        node: object = arguments
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        text = None if node is None else _rendered(node)
        if text is not None:
            headers[f"{PARAM_HEADER_PREFIX}{token.lower()}"] = header_value(text)
    return headers


class ToolHeaders:
    """What each listed tool declares, learnt from the server's ``tools/list`` answers as they pass."""

    def __init__(self) -> None:
        self._declared: dict[str, HeaderMap] = {}

    def learn(self, result: object) -> None:
        """Take the declarations of every tool in a ``tools/list`` result (a later listing replaces a tool's)."""
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(name := tool.get("name"), str):
                continue
            declared = param_header_map(tool.get("inputSchema"))
            if declared:
                if name in self._declared or len(self._declared) < MAX_TOOLS:
                    self._declared[name] = declared
            else:
                self._declared.pop(name, None)

    def for_call(self, params: Mapping[str, object]) -> dict[str, str]:
        """The ``Mcp-Param-*`` headers of a ``tools/call`` with ``params``; none for a tool never listed."""
        name = params.get("name")
        declared = self._declared.get(name) if isinstance(name, str) else None
        return param_headers(declared, params.get("arguments")) if declared else {}
