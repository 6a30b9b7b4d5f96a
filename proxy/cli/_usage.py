"""Command-line usage errors: one line on stderr naming the command, then exit status 2."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn, TypeAlias

EXIT_USAGE = 2

if TYPE_CHECKING:
    Commands: TypeAlias = "argparse._SubParsersAction[UsageParser]"
else:
    Commands = argparse._SubParsersAction


class UsageParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, with the way to more help, and exits 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)
