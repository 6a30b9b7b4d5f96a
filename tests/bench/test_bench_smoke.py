"""The benchmark harness with a handful of calls: every figure comes out, so `make bench` never rots."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._measure import Plan
from bench._report import machine_facts, render
from bench.run import REGOGATE, ROOT, main, run
from tests.conftest import find_opa_binary

FIGURES = {
    "direct": {
        "call_p50_us",
        "call_p99_us",
        "denied_p50_us",
        "ping_p50_us",
        "read_p50_us",
        "throughput_8",
        "cpu_upstream_us",
    },
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
        "cpu_proxy_us",
        "cpu_opa_us",
        "cpu_upstream_us",
        "tree_rss_mb",
        "tree_peak_rss_mb",
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
    "## CPU per allowed call",
    "## `tools/list` filtering",
    "## Memory and growth",
    "## Start-to-ready",
    "## OPA's own evaluation time per decision",
)


def test_a_smoke_run_produces_every_figure_on_every_path(tmp_path: Path) -> None:
    plan = Plan.smoke()
    # regogate itself stands in for a peer: "another proxy taking -c POLICY -- COMMAND".
    results = run(plan, workdir=tmp_path, progress=False, peers=[f"again={REGOGATE} --log-level error"])
    assert len(results) == plan.repeat
    (figures,) = results
    assert set(figures) == {"direct", "embedded", "tcp", "embedded-sqlite", "peer:again"}
    assert {"call_p50_us", "cpu_proxy_us", "cpu_upstream_us", "tree_peak_rss_mb"} <= set(figures["peer:again"])
    assert "opa_eval_p50_us" not in figures["peer:again"]  # a peer's own OPA, if any, is its business
    for path, names in FIGURES.items():
        assert names <= set(figures[path]), (path, names - set(figures[path]))
    assert FIGURES["embedded"] <= set(figures["tcp"])
    for values in figures.values():
        # CPU is counted in 10 ms ticks: a handful of calls may well cost none.
        assert all(value > 0 for name, value in values.items() if not name.startswith(("growth", "cpu_"))), values
        assert all(value >= 0 for name, value in values.items() if name.startswith("cpu_")), values

    report = render(
        results, plan, command="python -m bench.run --smoke", facts=machine_facts(find_opa_binary(), ROOT), elapsed=1.0
    )
    for section in SECTIONS:
        assert section in report
    assert "`python -m bench.run --smoke`" in report
    assert "| cpu |" in report
    assert "| again (peer) |" in report
    measured = report.split("## Added latency")[1].split("## CPU per allowed call")[0]
    assert "| - |" not in measured  # every latency, throughput and list figure has a value


def test_a_malformed_peer_is_refused_before_measuring() -> None:
    with pytest.raises(SystemExit):
        main(["--peer", "no-command="])
