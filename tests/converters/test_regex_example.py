"""Regex examples for generated tests: read as RE2, matched by OPA itself, None outside the known syntax."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from regogate.converters import load_policy, policy_bundle, write_bundle
from regogate.converters._regex_example import regex_example

#: RE2 shapes a policy may use, several of which Python's own regex syntax reads differently.
RE2_PATTERNS = [
    r"\.(txt|md|json)$",
    r"^[^.]*(\.[^./][^/]*)?$",
    r"^.{5,120}$",
    r"(?i)^drop\s+table",
    r"^(?P<owner>[a-z]+)/(?<repo>[a-z]+)$",
    r"^[[:alpha:]][[:digit:]]+$",
    r"^[[:^space:]]+\z",
    r"\Qa.b*c\E$",
    r"\x41\x{263A}",
    r"^[]a]+$",
    r"^[^]a]$",
    r"a{,3}",
    r"^(?U)x+y$",
    r"(?s:.)\b",
    r"^[^a-zA-Z0-9\s]$",
    r"\W\S\D\w\s\d",
    r"[\d\-_.]{3}",
    r"rm\s+-rf\s+/",
    r"^(main|master|release-\d+)$",
    r"",
]

#: Syntax this reader does not know: no example, and the generated test goes without one.
OUTSIDE = [r"\pL", r"\p{Greek}+", r"[\p{Lu}]", r"\C", r"[[:nope:]]", r"\123"]


def test_every_example_matches_its_pattern_in_opa(opa_bin: str) -> None:
    pairs = [[pattern, regex_example(pattern)] for pattern in RE2_PATTERNS]
    assert all(example is not None for _, example in pairs), pairs
    query = "[p | some p in input; not regex.match(p[0], p[1])]"
    result = subprocess.run(
        [opa_bin, "eval", "--format", "json", "--stdin-input", query],
        input=json.dumps(pairs),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["result"][0]["expressions"][0]["value"] == []


@pytest.mark.parametrize("pattern", OUTSIDE)
def test_syntax_outside_the_reader_gives_no_example(pattern: str) -> None:
    assert regex_example(pattern) is None


def test_the_same_pattern_always_gives_the_same_example() -> None:
    assert [regex_example(p) for p in RE2_PATTERNS] == [regex_example(p) for p in RE2_PATTERNS]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=r"ab.^$|()[]{}*+?\-:,0123=<>PdDwWsSxQEz", max_size=14))
def test_any_pattern_gives_a_match_or_nothing(pattern: str) -> None:
    try:
        re2.compile(pattern)
    except re2.error:
        return
    example = regex_example(pattern)
    assert example is None or re2.search(pattern, example) is not None


def test_a_policy_with_re2_only_syntax_gets_a_passing_allowing_test(tmp_path: Path, opa_bin: str) -> None:
    source = tmp_path / "re2.yaml"
    source.write_text(
        "version: '1'\n"
        "tools:\n"
        "  tag:\n"
        "    rules:\n"
        "      - name: semver-tags-only\n"
        "        conditions:\n"
        "          - path: args.tag\n"
        "            op: regex\n"
        "            value: '^v[[:digit:]]+\\.[[:digit:]]+\\z'\n"
        '        on_deny: "Tags look like v1.2"\n',
        encoding="utf-8",
    )
    bundle = policy_bundle(load_policy(source, source="re2.yaml"), source.read_text(encoding="utf-8"))
    write_bundle(bundle, tmp_path / "bundle")
    result = subprocess.run(
        [opa_bin, "test", "--format", "json", "-b", str(tmp_path / "bundle")], capture_output=True, text=True
    )
    outcomes = {t["name"]: not (t.get("fail") or t.get("error")) for t in json.loads(result.stdout)}
    assert outcomes == {
        "test_semver_tags_only_allows": True,
        "test_semver_tags_only_denies": True,
        "test_allowed_call_tag_decides_a_passing_call": True,
        "test_allowed_call_tag_leaves_a_failing_call_to_the_gate": True,
        "test_allowed_call_unlisted_tools_decides_a_passing_call": True,
    }
    assert result.returncode == 0
