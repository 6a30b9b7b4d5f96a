"""Validation: every mistake in a policy is reported at once, with its place and a clear message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from regogate.converters import load_policy, parse_policy
from regogate.proxy import PolicySourceError
from tests.conftest import POLICIES


def problems(text: str) -> list[str]:
    with pytest.raises(PolicySourceError) as caught:
        parse_policy(textwrap.dedent(text), source="p.yaml", server_id="p")
    return [str(p) for p in caught.value.problems]


def test_the_seed_policy_is_accepted_verbatim() -> None:
    # A copy of shared/seed/python-mcp-server-policy.yaml, kept in the repository: no test reads outside it.
    seed = Path(__file__).resolve().parent / "seed" / "python-mcp-server-policy.yaml"
    assert (POLICIES / "python.yaml").read_text(encoding="utf-8") == seed.read_text(encoding="utf-8")
    policy = load_policy(POLICIES / "python.yaml")
    assert policy.default == "deny"
    assert policy.server_id == "python"
    assert {t.name for t in policy.tools} >= {"conda", "poetry", "uv-run", "pip-install"}
    uv_run = next(r for r in policy.rules if r.tool == "uv-run")
    assert uv_run.name == "uv-run[0]"
    assert uv_run.required_args and uv_run.rate_limit is not None and uv_run.rate_limit.limit == 10


@pytest.mark.parametrize("name", ["python", "github", "stripe", "filesystem"])
def test_shipped_policies_are_valid(name: str) -> None:
    load_policy(POLICIES / f"{name}.yaml")


def test_all_errors_are_listed_at_once_with_location_and_line() -> None:
    found = problems(
        """\
        version: "1"
        tools:
          a:
            rules:
              - on_denny: "typo"
                rate_limt: 5/hour
              - conditions:
                  - path: args.x
                    op: equals
                    value: 1
        """
    )
    assert found == [
        "p.yaml:5:9: tools.a.rules[0].on_denny: unknown key 'on_denny' in a rule; did you mean 'on_deny'?",
        "p.yaml:6:9: tools.a.rules[0].rate_limt: unknown key 'rate_limt' in a rule; did you mean 'rate_limit'?",
        "p.yaml:9:17: tools.a.rules[1].conditions[0].op: unknown operator 'equals'; "
        "expected one of: eq, neq, in, not_in, lt, lte, gt, gte, regex, contains, exists",
    ]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("  - action: deny\n    conditions: [{path: args.x, op: eq, value: 1}]", "a deny rule always denies"),
        ("  - action: deny\n    rate_limit: 5/hour", "a deny rule always denies, so rate_limit"),
        ("  - rate_limit: 0/hour", "rate_limit of 0 admits nothing"),
        ("  - rate_limit: 5/fortnight", "unknown rate_limit window 'fortnight'"),
        ("  - rate_limit: five per hour", "rate_limit must look like 30/hour"),
        ("  - rate_limit: 5/hour\n    conditions: [{path: args.x, op: eq, value: 1}]", "rate_limit cannot be combined"),
        ("  - action: explode", "unknown action 'explode'"),
        ("  - conditions: [{path: args.x, op: lt, value: ten}]", "lt compares numbers"),
        ("  - conditions: [{path: args.x, op: in, value: a}]", "in needs a list of values"),
        ("  - conditions: [{path: args.x, op: regex, value: '(?<=a)b'}]", "does not compile as RE2"),
        ("  - conditions: [{path: args.x, op: exists, value: yes please}]", "exists takes true or false"),
        ("  - conditions: [{path: arguments.x, op: eq, value: 1}]", "path must be args.<name>"),
        ("  - conditions: [{path: args.x, op: eq}]", "a condition needs value"),
        ("  - conditions: [{path: state.t.c, op: lte, value: 3}]", "no rule declares counter 'c' in scope 't'"),
        ("  - state: {counter: c, window: week}", "unknown window 'week'"),
        ("  - state: {counter: c, window: day, increment: 2, increment_from: args.n}", "not both"),
        ("  - approval_timeout: 5m", "approval_timeout only applies to action: require_approval"),
        ("  - action: require_approval\n    approval_timeout: soon", "approval_timeout must be a duration"),
        ("  - name: same\n  - name: same", "rule name 'same' is already used"),
        ("  - name: a-b\n  - name: a_b", "becomes the Rego name 'a_b'"),
        ("  - rate_limit: 5/hour\n  - rate_limit: 9/hour", "counter '_rate_hour' of scope 't' is already declared"),
    ],
)
def test_each_mistake_has_its_own_message(snippet: str, expected: str) -> None:
    text = 'version: "1"\ntools:\n  t:\n    rules:\n' + textwrap.indent(snippet, "    ") + "\n"
    found = problems(text)
    assert any(expected in line for line in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "p.yaml:1:1: the policy file is empty"),
        ("- a\n- b\n", "a policy must be a mapping at the top level"),
        ("version: [unclosed\n", "not valid YAML"),
        ("tools: {}\n", 'version is required; write version: "1"'),
        ('version: "2"\n', "unsupported version '2'"),
        ('version: "1"\ndefault: maybe\n', "default must be allow or deny"),
        ('version: "1"\nhide: [a, a]\n', "tool 'a' is hidden twice"),
        ('version: "1"\nhide: [""]\n', "a hidden tool name must not be empty"),
        ('version: "1"\ntools:\n  a:\n', "tool 'a' needs rules"),
        ('version: "1"\ntools:\n  a: {rules: []}\n  a: {rules: []}\n', "duplicate key 'a'"),
    ],
)
def test_document_level_mistakes(text: str, expected: str) -> None:
    assert any(expected in line for line in problems(text))


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PolicySourceError) as caught:
        load_policy(tmp_path / "missing.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'missing.yaml'}:1:1: cannot read the policy file")


def test_a_listed_tool_with_no_rules_is_fine_and_names_are_generated() -> None:
    policy = parse_policy(
        'version: 1\ntools:\n  t:\n    rules: []\n  "*":\n    rules:\n      - rate_limit: 5/minute\n',
        source="p.yaml",
        server_id="p",
    )
    assert [r.name for r in policy.rules] == ["*[0]"]
    assert policy.rules[0].scope == "_global"
    assert policy.rules[0].ident == "all_tools_0"
