"""docs/testing.md shows the example test file and its policy as they are in the repository."""

from __future__ import annotations

from tests.conftest import ROOT


def test_the_documented_example_is_the_file_that_runs() -> None:
    doc = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    for name in ("test_example.py", "python-team.yaml"):
        text = (ROOT / "tests" / "testing" / name).read_text(encoding="utf-8").rstrip()
        assert f"\n{text}\n```" in doc, f"docs/testing.md does not show tests/testing/{name} as it is"
