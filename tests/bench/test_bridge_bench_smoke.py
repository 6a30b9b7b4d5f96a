"""The bridge's benchmark with a handful of calls: its section comes out, so `make bench` never rots."""

from __future__ import annotations

from pathlib import Path

from bench._bridge import bridge_section
from bench._measure import Plan
from bench.run import POLICY, REGOGATE, ROOT


def test_the_bridge_section_reports_both_paths(tmp_path: Path) -> None:
    section = bridge_section(Plan.smoke(), workdir=tmp_path, regogate=REGOGATE, policy=POLICY, root=ROOT)
    assert "| direct HTTP |" in section
    assert "| bridge |" in section
    assert "Target: added p50 ≤ 1000 µs" in section
