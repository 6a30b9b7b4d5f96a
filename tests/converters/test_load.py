"""Validation: every mistake in a policy is reported at once, with its place and a clear message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from regogate.converters import load_policy, parse_policy
from regogate.proxy import PolicySourceError
from regogate.proxy.cli._main import main
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
        "p.yaml:9:17: tools.a.rules[1].conditions[0].op: unknown operator 'equals'; did you mean 'eq'?",
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


def test_plain_scalars_are_read_as_yaml_1_2_and_the_1_1_traps_are_warned_about() -> None:
    policy = parse_policy(
        textwrap.dedent(
            """\
            version: "1"
            tools:
              t:
                rules:
                  - name: r
                    conditions:
                      - {path: args.at, op: eq, value: 12:00}
                      - {path: args.country, op: in, value: [NO, SE]}
                      - {path: args.mode, op: not_in, value: [on, off, yes]}
                      - {path: args.perm, op: eq, value: 0o17}
                      - {path: args.big, op: eq, value: 1_000}
                      - {path: args.ratio, op: lt, value: 1e3}
            """
        ),
        source="p.yaml",
        server_id="p",
    )
    values = [c.value for c in policy.rules[0].conditions]
    assert values == ["12:00", ["NO", "SE"], ["on", "off", "yes"], 15, "1_000", 1000.0]
    warned = {(w.line, w.column): w.message for w in policy.warnings}
    assert sorted(warned) == [(7, 44), (8, 50), (9, 51), (9, 55), (9, 60), (10, 46), (11, 45), (12, 47)]
    assert warned[(8, 50)] == (
        "warning: NO is the string 'NO' in YAML 1.2 (how regogate and Intercept read it) but false in YAML 1.1; "
        "quote it if you mean the text"
    )
    assert "the number 720 in YAML 1.1" in warned[(7, 44)]


def test_exists_yes_is_a_string_in_yaml_1_2_so_validation_says_so() -> None:
    found = problems(
        """\
        version: "1"
        tools:
          t:
            rules:
              - conditions: [{path: args.x, op: exists, value: yes}]
        """
    )
    assert found == [
        "p.yaml:5:56: warning: yes is the string 'yes' in YAML 1.2 (how regogate and Intercept read it) "
        "but true in YAML 1.1; quote it if you mean the text",
        "p.yaml:5:56: tools.t.rules[0].conditions[0].value: exists takes true or false, not 'yes'",
    ]


def test_validation_follows_intercept() -> None:
    # +5 is a count Go's Atoi accepts; an evaluate rule without conditions is an error with its place.
    plus = parse_policy(
        'version: "1"\ntools:\n  t:\n    rules:\n      - rate_limit: +5/hour\n', source="p", server_id="p"
    )
    assert plus.rules[0].rate_limit is not None and plus.rules[0].rate_limit.limit == 5
    assert problems('version: "1"\ntools:\n  t:\n    rules:\n      - name: empty\n        on_deny: nope\n') == [
        "p.yaml:5:9: tools.t.rules[0]: evaluate rules must have at least one condition "
        "(write conditions, a rate_limit, or use action: deny)",
    ]
    assert problems(
        'version: "1"\ntools:\n  t:\n    rules:\n      - conditions: [{path: args.x, op: not_contain, value: a}]\n'
    ) == [
        "p.yaml:5:41: tools.t.rules[0].conditions[0].op: unknown operator 'not_contain'; did you mean 'not_contains'?"
    ]
    assert problems(
        'version: "1"\ntools:\n  t:\n    rules:\n      - conditions: [{path: args.x, op: contain, value: a}]\n'
    ) == ["p.yaml:5:41: tools.t.rules[0].conditions[0].op: unknown operator 'contain'; did you mean 'contains'?"]


def test_validate_prints_the_yaml_1_1_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        'version: "1"\ntools:\n  t:\n    rules:\n      - conditions: [{path: args.c, op: in, value: [NO, SE]}]\n',
        encoding="utf-8",
    )
    assert main(["validate", "-c", str(policy)]) == 0
    captured = capsys.readouterr()
    assert "valid" in captured.out
    assert captured.err == (
        f"{policy}:5:53: warning: NO is the string 'NO' in YAML 1.2 (how regogate and Intercept read it) "
        "but false in YAML 1.1; quote it if you mean the text\n"
    )
