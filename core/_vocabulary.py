"""The words a policy and the proxy share: rate-limit windows, argument-logging modes, the tool wildcard."""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = ["LOG_ARGS", "WILDCARD", "WINDOWS", "LogArgs", "Window"]

Window = Literal["minute", "hour", "day"]
"""A calendar-aligned UTC rate-limit window."""
WINDOWS: Final[tuple[Window, ...]] = get_args(Window)

LogArgs = Literal["hash", "none", "full"]
"""How tool arguments reach the logs: a keyed hash, nothing, or in clear."""
LOG_ARGS: Final[tuple[LogArgs, ...]] = get_args(LogArgs)

WILDCARD: Final = "*"
"""The tool name that stands for every tool."""
