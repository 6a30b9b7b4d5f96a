"""Where counters live unless ``--state`` says otherwise: one SQLite file per user, shared by all their proxies."""

from __future__ import annotations

import os
from typing import Final

from regogate.core import StateError, state_dir

__all__ = ["DEFAULT_FILE", "default_state_spec"]

#: The file's name inside the state directory.
DEFAULT_FILE: Final = "state.db"
#: The directory holds what the user's calls counted: only that user may enter it.
DIR_MODE: Final = 0o700


def default_state_spec(override: str | None = None) -> str:
    """The ``sqlite://`` spec of the default store in regogate's state directory (``--state-dir``), made 0700.

    Raises:
        StateError: the directory cannot be created or made private.
    """
    directory = state_dir(override)
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, DIR_MODE)
    except OSError as exc:
        raise StateError(f"cannot prepare the state directory {directory}: {exc.strerror or exc}") from exc
    return f"sqlite://{directory / DEFAULT_FILE}"
