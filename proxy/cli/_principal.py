"""Who is calling: the principal that goes into every decision as ``input.principal``.

Claims come from ``--principal-file FILE`` (a JSON object), else the ``REGOGATE_PRINCIPAL``
environment variable (a JSON object); ``--principal key=value`` flags add or replace claims on top.
``id`` (a non-empty string) is required by rate limits counted per principal; it defaults to the
local user name.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from pathlib import Path

from regogate.core import ConfigError
from regogate.proxy.cli._json_text import json_object

ENV_VAR = "REGOGATE_PRINCIPAL"
MAX_PRINCIPAL_BYTES = 64 * 1024
"""A principal is a handful of claims; a bigger file is a mistake (a token dump, a log)."""
_EXPECTED = "the principal must be a JSON object of claims"


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER in a bare container
        return "unknown"


def load_principal(
    file: str | None, pairs: Sequence[str], environ: Mapping[str, str], *, user: str | None = None
) -> dict[str, object]:
    """The principal's claims, with ``id`` always a non-empty string.

    Raises:
        ConfigError: an unreadable or non-object file or variable, a flag without ``=``, a non-string ``id``;
            each names the file, variable or flag.
    """
    claims: dict[str, object] = {}
    if file is not None:
        path = Path(file)
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_PRINCIPAL_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"--principal-file {file}: {exc.strerror or exc}") from exc
        if len(raw) > MAX_PRINCIPAL_BYTES:
            raise ConfigError(f"--principal-file {file}: larger than {MAX_PRINCIPAL_BYTES} bytes")
        claims = json_object(raw.decode("utf-8", "replace"), file, _EXPECTED)
    elif environ.get(ENV_VAR):
        claims = json_object(environ[ENV_VAR], ENV_VAR, _EXPECTED)
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"--principal {pair!r}: expected key=value")
        claims[key.strip()] = value
    claims.setdefault("id", user if user is not None else _local_user())
    principal_id = claims["id"]
    if not isinstance(principal_id, str) or not principal_id:
        raise ConfigError("principal: id must be a non-empty string")
    return claims
