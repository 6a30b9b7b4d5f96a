"""A `regogate run` that cannot start says what failed and what to do in a line, exits 1, and prints no traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from regogate.core import ConfigError, StateError
from regogate.proxy.cli._failures import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_START, report_failure
from tests.conftest import ROOT, find_opa_binary

REGOGATE = str(Path(sys.executable).parent / "regogate")
POLICY = str(ROOT / "policies" / "python.yaml")
TIMEOUT = 60.0

CASES = {
    "no such server command": (["-c", POLICY, "--", "/nonexistent/mcp-server"], "check the command after --"),
    "policy file missing": (["-c", "missing.yaml", "--", "true"], "regogate validate"),
    "audit log unwritable": (["-c", POLICY, "--audit-log", "/proc/none/audit.jsonl", "--", "true"], "--audit-log"),
    "state store unopenable": (["-c", POLICY, "--state", "sqlite:///proc/none/state.db", "--", "true"], "--state"),
    "OPA binary broken": (["-c", POLICY, "--opa-bin", "/bin/false", "--", "true"], "--opa-bin"),
}


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGOGATE_OPA": find_opa_binary(), "TMPDIR": str(tmp_path)}
    return subprocess.run(
        [REGOGATE, "run", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_start_up_failure_is_one_line_with_what_to_do_and_exit_status_1(case: str, tmp_path: Path) -> None:
    args, advice = CASES[case]
    result = _run(args, tmp_path)
    assert result.returncode == EXIT_START, result.stderr
    assert "Traceback" not in result.stderr
    assert "ExceptionGroup" not in result.stderr
    # Besides the failure, only the notices of where the audit log and the counters go.
    notice = re.compile(r"regogate: (audit log \S+|rate-limit counters in \S+ .*)")
    ours = [line for line in result.stderr.splitlines() if line.startswith("regogate: ") and not notice.fullmatch(line)]
    assert len(ours) == 1, result.stderr
    assert advice in result.stderr


def test_debug_adds_the_traceback_for_a_bug_report(tmp_path: Path) -> None:
    result = _run(["--debug", "-c", POLICY, "--", "/nonexistent/mcp-server"], tmp_path)
    assert result.returncode == EXIT_START
    assert "Traceback" in result.stderr
    assert "regogate: cannot start the MCP server" in result.stderr


def test_errors_inside_task_groups_are_unwrapped(capsys: pytest.CaptureFixture[str]) -> None:
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [ConfigError("cannot start the MCP server 'x'")])])
    assert report_failure(nested) == EXIT_START
    assert capsys.readouterr().err == "regogate: cannot start the MCP server 'x'\n"


def test_an_unexpected_error_is_an_internal_error_pointing_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_failure(ExceptionGroup("g", [KeyError("boom")])) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("regogate: internal error: KeyError") and "--debug" in err and "Traceback" not in err


def test_an_expected_error_wins_over_the_cancellations_it_caused(capsys: pytest.CaptureFixture[str]) -> None:
    group = BaseExceptionGroup("g", [KeyboardInterrupt(), StateError("rate-limit store x: cannot open")])
    assert report_failure(group) == EXIT_START
    assert "check --state" in capsys.readouterr().err


def test_an_interrupt_during_start_up_exits_130_quietly(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_failure(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "regogate: interrupted\n"
