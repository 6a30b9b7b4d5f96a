"""The gateway's benchmark with a handful of calls: its section comes out, so it never rots."""

from __future__ import annotations

import pytest

from bench import gateway_ab
from bench.gateway import measure, render


def test_the_gateway_section_reports_throughput_latency_memory_and_the_stdio_floor() -> None:
    figures = measure(clients=2, calls=5, sequential=5, idle=2)
    section = render([figures, figures], clients=2, calls=5, idle=2)
    assert figures["calls_per_second"] > 0 and figures["gateway_p50"] > 0 and figures["direct_p50"] > 0
    assert figures["upstream_kib"] > 0
    assert "decided calls/s with 2 concurrent keep-alive HTTP clients" in section
    assert "| gateway: regogate serve -- bench/echo_server.py |" in section
    assert "Memory per idle session (2 sessions opened)" in section
    assert figures["stdio_calls_per_second"] > 0 and figures["stdio_p50"] > 0
    assert "The floor in the same run, `regogate run -- bench/echo_server.py` over stdio" in section


def test_the_gateway_ab_compares_two_trees_figure_by_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert gateway_ab.main(["HEAD", ".", "--rounds", "1", "--clients", "1", "--calls", "3", "--sequential", "3"]) == 0
    report = capsys.readouterr().out
    rows = [line for line in report.splitlines() if line.startswith("| ") and "figure" not in line]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == list(gateway_ab.FIGURES)
