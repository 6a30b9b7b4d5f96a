"""A JSON object given as text on the command line, in a file or in the environment."""

from __future__ import annotations

import json

from regogate.core import ConfigError

__all__ = ["json_object"]


def json_object(text: str, where: str, expected: str = "must be a JSON object") -> dict[str, object]:
    """Parse ``text`` as a JSON object; ``where`` names its source (a flag, a file, a variable).

    Raises:
        ConfigError: ``<where>: not JSON: <why>`` or ``<where>: <expected>`` for any other JSON value.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {expected}")
    return value
