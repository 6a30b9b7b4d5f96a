"""One evaluation by the real ``opa eval`` over bundle directories, for commands that serve nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import anyio

from regogate.core import ConfigError

#: Loading and compiling a few bundles takes well under a second; a busy machine gets headroom.
EVAL_TIMEOUT: Final = 30.0


@dataclass(frozen=True)
class Evaluation:
    """What ``opa eval`` said: the value (``defined`` False when undefined), and its explanation if asked."""

    defined: bool
    value: object
    explanation: str = ""


def _argv(opa_bin: str, bundles: Sequence[Path], query: str, output: str, explain: bool) -> list[str]:
    argv = [opa_bin, "eval", "--format", output, "--stdin-input"]
    if explain:
        argv += ["--explain", "full"]
    for bundle in bundles:
        argv += ["--bundle", str(bundle)]
    return [*argv, query]


async def _run(argv: list[str], input_doc: object, timeout: float) -> subprocess.CompletedProcess[bytes]:
    try:
        with anyio.fail_after(timeout):
            return await anyio.run_process(argv, input=json.dumps(input_doc).encode(), check=False)
    except TimeoutError as exc:
        raise ConfigError(f"opa eval did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise ConfigError(f"cannot run {argv[0]}: {exc}") from exc


async def opa_eval(
    opa_bin: str,
    bundles: Sequence[Path],
    query: str,
    input_doc: object,
    *,
    explain: bool = False,
    timeout: float = EVAL_TIMEOUT,
) -> Evaluation:
    """Evaluate ``query`` (``data.a.b``) with ``input_doc`` over ``bundles``.

    Raises:
        ConfigError: OPA fails (a bundle does not compile; its errors are quoted) or times out.
    """
    done = await _run(_argv(opa_bin, bundles, query, "json", False), input_doc, timeout)
    if done.returncode != 0:
        detail = (done.stdout or done.stderr).decode(errors="replace").strip()
        raise ConfigError(f"opa eval {query} failed:\n{detail}")
    try:
        answer = json.loads(done.stdout)
    except ValueError as exc:
        raise ConfigError(f"opa eval printed something that is not JSON: {exc}") from exc
    results = answer.get("result") if isinstance(answer, dict) else None
    if not results:
        return Evaluation(defined=False, value=None)
    try:
        value = results[0]["expressions"][0]["value"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ConfigError(f"opa eval answered in an unexpected shape: {answer!r:.200}") from exc
    explanation = ""
    if explain:
        traced = await _run(_argv(opa_bin, bundles, query, "pretty", True), input_doc, timeout)
        explanation = traced.stdout.decode(errors="replace")
    return Evaluation(defined=True, value=value, explanation=explanation)


async def opa_version(opa_bin: str, timeout: float = EVAL_TIMEOUT) -> str:
    """The output of ``opa version``.

    Raises:
        ConfigError: the binary does not run or fails.
    """
    try:
        with anyio.fail_after(timeout):
            done = await anyio.run_process([opa_bin, "version"], check=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot run {opa_bin} version: {exc}") from exc
    if done.returncode != 0:
        raise ConfigError(f"{opa_bin} version exited with status {done.returncode}")
    return done.stdout.decode(errors="replace")
