"""The benchmark harness with a handful of calls: every figure comes out, so `make bench` never rots."""

from __future__ import annotations

from pathlib import Path

from bench._measure import Plan
from bench._report import machine_facts, render
from bench.run import ROOT, run
from tests.conftest import find_opa_binary

FIGURES = {
    "direct": {"call_p50_us", "call_p99_us", "denied_p50_us", "ping_p50_us", "read_p50_us", "throughput_8"},
    "embedded": {
        "call_p50_us",
        "call_p90_us",
        "call_p99_us",
        "denied_p50_us",
        "unlimited_p50_us",
        "limited_p50_us",
        "ping_p50_us",
        "read_p50_us",
        "throughput_1",
        "throughput_8",
        "throughput_32",
        "list_10_p50_us",
        "list_100_p50_us",
        "list_1000_p50_us",
        "rss_checkpoint_mb",
        "rss_end_mb",
        "growth_lat_checkpoint_us",
        "growth_lat_end_us",
        "ready_initialize_ms",
        "ready_call_ms",
        "opa_rss_mb",
        "opa_eval_p50_us",
        "opa_handler_p50_us",
        "opa_client_rtt_p50_us",
    },
    "embedded-sqlite": {"ready_call_ms", "unlimited_p50_us", "limited_p50_us"},
}
SECTIONS = (
    "## Targets",
    "## Added latency per allowed `tools/call`",
    "## A denied call's round trip",
    "## Extra cost of a rate-limited call",
    "## Messages the proxy only relays",
    "## Throughput",
    "## `tools/list` filtering",
    "## Memory and growth",
    "## Start-to-ready",
    "## OPA's own evaluation time per decision",
)


def test_a_smoke_run_produces_every_figure_on_every_path(tmp_path: Path) -> None:
    plan = Plan.smoke()
    results = run(plan, workdir=tmp_path, progress=False)
    assert len(results) == plan.repeat
    (figures,) = results
    assert set(figures) == {"direct", "embedded", "tcp", "embedded-sqlite"}
    for path, names in FIGURES.items():
        assert names <= set(figures[path]), (path, names - set(figures[path]))
    assert FIGURES["embedded"] <= set(figures["tcp"])
    for values in figures.values():
        assert all(value > 0 for name, value in values.items() if not name.startswith("growth")), values

    report = render(
        results, plan, command="python -m bench.run --smoke", facts=machine_facts(find_opa_binary(), ROOT), elapsed=1.0
    )
    for section in SECTIONS:
        assert section in report
    assert "`python -m bench.run --smoke`" in report
    assert "| cpu |" in report
    measured = report.split("## Added latency")[1].split("## Memory and growth")[0]
    assert "| - |" not in measured  # every latency, throughput and list figure has a value
