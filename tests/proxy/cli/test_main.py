"""The top level of the command line: version, help, unknown commands, the drop-in form."""

from __future__ import annotations

from importlib.metadata import version

from regogate.core import __version__
from tests.proxy.cli.conftest import Cli


def test_version_is_the_one_the_distribution_carries(cli: Cli) -> None:
    out = cli("--version")
    assert out.returncode == 0
    assert out.stdout.startswith(f"regogate {__version__} ")
    assert version("regogate") == __version__


def test_help_lists_run_and_every_command(cli: Cli) -> None:
    out = cli("--help")
    assert out.returncode == 0
    for command in (
        "run",
        "serve",
        "validate",
        "scan",
        "explain",
        "status",
        "doctor",
        "convert",
        "core-bundle",
        "mask-bundle",
    ):
        assert f"\n    {command} " in out.stdout


def test_an_unknown_command_says_so_and_lists_the_commands(cli: Cli) -> None:
    out = cli("sacn", "--", "server")
    assert out.returncode == 2
    assert "unknown command 'sacn'" in out.stderr
    assert "run, serve, validate, scan, explain, status, doctor" in out.stderr
    assert "-c required" not in out.stderr and out.stdout == ""


def test_the_drop_in_form_still_means_run(cli: Cli) -> None:
    out = cli("-c", "policy.yaml")
    assert out.returncode == 2
    assert out.stderr.startswith("regogate run: no upstream MCP server: give a command after -- or --upstream URL")
