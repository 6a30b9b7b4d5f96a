"""Where a remote MCP server is and how to reach it: URL, extra headers (maybe secret), timeouts.

Header values are treated as secrets throughout: they are never put in a ``repr``, a log line, an
error or the audit log; ``scrub`` removes them from any text that might have picked one up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from regogate.core import ConfigError
from regogate.proxy.relay._framing import MAX_LINE_BYTES
from regogate.proxy.relay._http_headers import PARAM_HEADER_PREFIX

CONNECT_TIMEOUT = 10.0
"""Time to open a TCP/TLS connection to the server; a refused or silent host fails the call, not hangs it."""

READ_TIMEOUT = 300.0
"""Longest silence while waiting for an answer; long tool calls that send progress or pings reset it."""

RESERVED_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        "content-length",
        "host",
        "last-event-id",
        "mcp-method",
        "mcp-name",
        "mcp-protocol-version",
        "mcp-session-id",
        "transfer-encoding",
    }
)
"""Headers the bridge sets itself (and every ``Mcp-Param-*``); a user header named so would break the protocol."""

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class HttpTarget:
    """A Streamable HTTP endpoint; ``headers`` go on every request and never into logs."""

    url: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    max_message: int = MAX_LINE_BYTES
    """Largest server message taken, as for a process's lines."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--upstream must be an http:// or https:// URL, not {display_url(self.url)!r}")
        for name, value in self.headers:
            check_header_name(name)
            check_header_value(name, value)

    @property
    def display(self) -> str:
        """The URL without credentials, query or fragment: safe to log."""
        return display_url(self.url)

    def scrub(self, text: str) -> str:
        """``text`` with every header value and the URL's secret parts replaced by ``***``."""
        parts = urlsplit(self.url)
        given = [value for _, value in self.headers] + [s for s in (parts.password, parts.username, parts.query) if s]
        # A value shorter than 4 characters would blank out ordinary letters everywhere: the whole URL
        # and its user info are replaced instead.
        secrets = [self.url, parts.netloc.rpartition("@")[0], *(s for s in given if len(s) >= 4)]
        secrets = [s for s in secrets if s]
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        names = [name for name, _ in self.headers]
        return f"HttpTarget(url={self.display!r}, headers={names!r})"


def display_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: user info, query and fragment dropped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<invalid URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_header_name(name: str) -> None:
    """Refuse header names that are not HTTP tokens or that the bridge sets itself.

    Raises:
        ConfigError: naming the header (never its value).
    """
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ConfigError(f"header name {name!r} is not a valid HTTP header name")
    if name.lower() in RESERVED_HEADERS or name.lower().startswith(PARAM_HEADER_PREFIX):
        raise ConfigError(f"header {name!r} is set by regogate itself and cannot be given")


def check_header_value(name: str, value: str) -> None:
    """Refuse a value that would not stay one plain-ASCII header field (the request would be refused anyway).

    Raises:
        ConfigError: naming the header (never its value).
    """
    if any(c in value for c in "\r\n\0"):
        raise ConfigError(f"header {name!r}: the value contains a line break or NUL")
    if not all(c == "\t" or " " <= c <= "~" for c in value):
        raise ConfigError(f"header {name!r}: the value holds a control or non-ASCII character")


def parse_headers(
    given: Iterable[str], from_env: Iterable[str], environ: Mapping[str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    """``--header 'Name: Value'`` and ``--header-env Name=ENVVAR`` into (name, value) pairs.

    Raises:
        ConfigError: a malformed flag, a missing or empty variable, a value with a line break;
            messages name the flag and the header, never the value.
    """
    env = os.environ if environ is None else environ
    headers: list[tuple[str, str]] = []
    for item in given:
        name, colon, value = item.partition(":")
        if not colon:
            raise ConfigError(f"--header {name.strip()!r}: expected 'Name: Value'")
        headers.append((name.strip(), value.strip()))
    for item in from_env:
        name, equals, variable = item.partition("=")
        if not equals or not variable:
            raise ConfigError(f"--header-env {item!r}: expected Name=ENVVAR")
        secret = env.get(variable)
        if not secret:
            raise ConfigError(f"--header-env {name}: environment variable {variable} is not set or empty")
        headers.append((name.strip(), secret.strip()))
    seen: set[str] = set()
    for name, value in headers:
        check_header_name(name)
        check_header_value(name, value)
        if name.lower() in seen:
            raise ConfigError(f"header {name!r} is given twice")
        seen.add(name.lower())
    return tuple(headers)
