"""The one way tool arguments reach a log: a keyed hash (HMAC-SHA256) under a per-installation secret.

An unkeyed hash of a small argument (a PIN, a short token) is undone by trying every value; an HMAC
under a secret only this installation holds is not. The secret is 32 random bytes in
``<state dir>/args-hash.key`` (mode 0600, created on first use; the state directory is
``$XDG_STATE_HOME/regogate``, else ``~/.local/state/regogate``). Every regogate of the installation
uses the same key, so hashes join across proxies, and between the audit log and OPA's decision log:
regogate sends the hash to OPA as ``input.tool.arguments_hash`` and the decision-log mask erases the
arguments themselves.

``leaks`` tells whether a text (a denial message) quotes an argument's name or value, so the logs
can withhold it unless ``--log-args full``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

from regogate.core import ConfigError, state_dir

__all__ = ["HASH_PREFIX", "KEY_FILE", "ArgumentHasher", "default_key_path", "leaks", "load_key"]

KEY_FILE: Final = "args-hash.key"
KEY_BYTES: Final = 32
HASH_PREFIX: Final = "hmac-sha256:"
#: Argument names and values shorter than this are not looked for in messages (a one-letter name is everywhere).
MIN_LEAK_LENGTH: Final = 2
#: Bounds the walk over an argument tree; deeper or wider arguments are treated as leaking.
MAX_LEAK_ITEMS: Final = 10_000


def default_key_path(state_dir_override: str | Path | None = None) -> Path:
    """``<state dir>/args-hash.key``; the state dir is ``--state-dir``, else ``$XDG_STATE_HOME/regogate``."""
    return state_dir(state_dir_override) / KEY_FILE


def load_key(path: Path) -> bytes:
    """Read the installation's key, creating it (mode 0600, in a 0700 directory) on first use.

    Raises:
        ConfigError: the key cannot be created or read, is not a private regular file of this user,
            or is not the expected 32 bytes (hex-encoded).
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.path.lexists(path):
            _create_key(path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "r", encoding="ascii") as handle:
            info = os.fstat(handle.fileno())
            text = handle.read(4 * KEY_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"argument hash key {path}: {reason}") from exc
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(
            f"argument hash key {path}: must be a regular file of this user that only they can read "
            f"(run: chmod 600 {path})"
        )
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"argument hash key {path}: not {KEY_BYTES} hex-encoded bytes; remove it to make a new one")
    return key


def _create_key(path: Path) -> None:
    """Write a new key whole, then link it into place: a process starting at the same moment never
    reads a half-written key, and when two create one at once the first link wins for both."""
    fd, temporary = tempfile.mkstemp(prefix=".args-hash-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
"""One encoder for every digest: ``json.dumps`` with options builds a new one per call."""


def _canonical(arguments: object) -> bytes:
    return _CANONICAL.encode(arguments).encode()


class ArgumentHasher:
    """Hashes a call's arguments under the installation's key."""

    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod="sha256")
        """Copied for each digest: keying an HMAC anew costs more than the hashing (OpenSSL 3)."""

    def digest(self, arguments: object) -> str:
        """``hmac-sha256:<hex>`` of the arguments' canonical JSON (sorted keys, compact, UTF-8)."""
        keyed = self._keyed.copy()
        keyed.update(_canonical(arguments))
        return HASH_PREFIX + keyed.hexdigest()


def _fragments(arguments: object) -> Iterator[str]:
    """Every key and scalar value in an argument tree, as text."""
    stack = [arguments]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                yield str(key)
                stack.append(value)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str):
            yield item
        elif item is not None:
            yield json.dumps(item) if isinstance(item, bool) else str(item)


def leaks(text: str, arguments: object) -> bool:
    """Whether ``text`` quotes a key or value of ``arguments`` (or the arguments are too big to tell)."""
    for count, fragment in enumerate(_fragments(arguments)):
        if count >= MAX_LEAK_ITEMS:
            return True
        if len(fragment) >= MIN_LEAK_LENGTH and fragment in text:
            return True
    return False
