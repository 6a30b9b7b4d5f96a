"""Intercept's decisions, row by row, through the real `regogate` between the SDK client and a server.

Each policy runs in one regogate session (embedded real OPA) and its rows are called in order, so
counters carry from row to row. A row expects the call forwarded (`None`) or denied with exactly
that message. Statements come from ../shared/notes/intercept-semantics.md sections 3-12; the
deliberate divergences listed in rego/README.md are marked as such.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.e2e.harness import SERVERS, gated_session, text

pytestmark = pytest.mark.anyio

DENIED = "[POLICY DENIED] "
#: One session, one OPA start and a few dozen calls; generous for a loaded 2-core CI machine.
TABLE_TIMEOUT = 60

Row = tuple[str, dict[str, Any], str | None]

COMPARISONS = """\
version: "1"
tools:
  eq_num: {rules: [{name: eq-five, conditions: [{path: args.v, op: eq, value: 5}]}]}
  eq_text: {rules: [{name: eq-text-five, conditions: [{path: args.v, op: eq, value: "5"}]}]}
  eq_bool: {rules: [{name: eq-true, conditions: [{path: args.v, op: eq, value: true}], on_deny: "not true"}]}
  eq_million: {rules: [{name: eq-million, conditions: [{path: args.v, op: eq, value: "1000000"}]}]}
  eq_float: {rules: [{name: eq-float, conditions: [{path: args.v, op: eq, value: "2.5"}]}]}
  neq_num: {rules: [{name: not-five, conditions: [{path: args.v, op: neq, value: 5}]}]}
  in_list: {rules: [{name: one-of, conditions: [{path: args.v, op: in, value: ["a", 1, true]}]}]}
  not_in_list: {rules: [{name: none-of, conditions: [{path: args.v, op: not_in, value: [5]}]}]}
  contains_num: {rules: [{name: has-five, conditions: [{path: args.tags, op: contains, value: 5}]}]}
  contains_text: {rules: [{name: has-rm, conditions: [{path: args.cmd, op: contains, value: rm}]}]}
  not_contains_text: {rules: [{name: no-rm, conditions: [{path: args.cmd, op: not_contains, value: rm}]}]}
  regex: {rules: [{name: under-tmp, conditions: [{path: args.path, op: regex, value: "^/tmp/"}]}]}
  not_regex: {rules: [{name: not-etc, conditions: [{path: args.path, op: not_regex, value: "^/etc"}]}]}
  exists_false: {rules: [{name: no-v, conditions: [{path: args.v, op: exists, value: false}]}]}
  exists_true: {rules: [{name: has-v, conditions: [{path: args.v, op: exists, value: true}]}]}
  lt_num: {rules: [{name: small, conditions: [{path: args.v, op: lt, value: 5}]}]}
  nested: {rules: [{name: deep, conditions: [{path: args.a.b, op: eq, value: x}]}]}
"""

COMPARISON_ROWS: list[Row] = [
    ("eq_num", {"v": 5}, None),
    ("eq_num", {"v": 5.0}, None),
    ("eq_num", {"v": "5"}, None),  # %v text: "5" eq 5
    ("eq_num", {"v": "5.0"}, 'Denied by rule "eq-five"'),
    ("eq_num", {}, 'Denied by rule "eq-five"'),
    ("eq_text", {"v": 5}, None),
    ("eq_text", {"v": 6}, 'Denied by rule "eq-text-five"'),
    ("eq_bool", {"v": "true"}, None),
    ("eq_bool", {"v": True}, None),
    ("eq_bool", {"v": 1}, "not true"),
    ("eq_million", {"v": "1000000"}, None),
    ("eq_million", {"v": 1000000}, 'Denied by rule "eq-million"'),  # a JSON number prints 1e+06
    ("eq_float", {"v": 2.5}, None),
    ("eq_float", {"v": "2.50"}, 'Denied by rule "eq-float"'),
    ("neq_num", {"v": 6}, None),
    ("neq_num", {"v": "5"}, 'Denied by rule "not-five"'),  # no bypass through a string
    ("neq_num", {}, 'Denied by rule "not-five"'),  # a missing path fails neq too
    ("neq_num", {"v": None}, None),  # null resolves and prints <nil>
    ("in_list", {"v": "1"}, None),
    ("in_list", {"v": "true"}, None),
    ("in_list", {"v": "b"}, 'Denied by rule "one-of"'),
    ("not_in_list", {"v": "5"}, 'Denied by rule "none-of"'),
    ("not_in_list", {"v": 4}, None),
    ("contains_num", {"tags": ["5"]}, None),
    ("contains_num", {"tags": [5.0]}, None),
    ("contains_num", {"tags": ["6"]}, 'Denied by rule "has-five"'),
    ("contains_num", {"tags": "a5b"}, 'Denied by rule "has-five"'),  # a substring needs a string value
    ("contains_text", {"cmd": "rm -rf /"}, None),
    ("contains_text", {"cmd": ["ls", "rm"]}, None),
    ("contains_text", {"cmd": "ls"}, 'Denied by rule "has-rm"'),
    ("not_contains_text", {"cmd": "ls"}, None),
    ("not_contains_text", {"cmd": "rm -rf /"}, 'Denied by rule "no-rm"'),
    ("not_contains_text", {}, 'Denied by rule "no-rm"'),
    ("regex", {"path": "/tmp/x"}, None),
    ("regex", {"path": "/var/tmp/x"}, 'Denied by rule "under-tmp"'),
    ("regex", {"path": 5}, 'Denied by rule "under-tmp"'),
    ("not_regex", {"path": "/home/me"}, None),
    ("not_regex", {"path": "/etc/passwd"}, 'Denied by rule "not-etc"'),
    ("exists_false", {"v": None}, None),  # null counts as absent
    ("exists_false", {}, None),
    ("exists_false", {"v": 0}, 'Denied by rule "no-v"'),
    ("exists_true", {"v": None}, 'Denied by rule "has-v"'),
    ("exists_true", {"v": ""}, None),
    ("lt_num", {"v": 4.5}, None),
    ("lt_num", {"v": "3"}, 'Denied by rule "small"'),  # order operators need a number
    ("nested", {"a": {"b": "x"}}, None),
    ("nested", {"a": [{"b": "x"}]}, 'Denied by rule "deep"'),  # lists are never walked
]

COUNTERS = """\
version: "1"
tools:
  limited:
    rules:
      - name: three-an-hour
        rate_limit: 3/hour
  reader:
    rules:
      - name: reads-limited
        conditions: [{path: state.limited._rate_hour, op: lt, value: 2}]
  spend:
    rules:
      - name: budget
        conditions: [{path: state.spend.total, op: lt, value: 10}]
        state: {counter: total, window: day, increment_from: args.amount}
  watch:
    rules:
      - name: counted-never
        conditions: [{path: state.watch.seen, op: gte, value: 0}]
        state: {counter: seen, window: day, increment_from: args.n}
  peek:
    rules:
      - name: still-zero
        conditions:
          - {path: state.watch.seen, op: eq, value: 0}
          - {path: state.watch.seen, op: exists, value: true}
  capped:
    rules:
      - name: two-a-day
        conditions: [{path: state.capped.calls, op: lte, value: 2}]
        state: {counter: calls, window: day}
        on_deny: "capped for today"
"""

INTERNAL = "Internal policy error: args.amount must be a number of at least 0; "
INTERNAL += 'it is what a call adds to counter "total" of rule "budget"'

COUNTER_ROWS: list[Row] = [
    ("reader", {}, None),  # the shorthand's counter reads 0 before any call
    ("limited", {}, None),
    ("limited", {}, None),
    ("reader", {}, 'Denied by rule "reads-limited"'),  # another tool reads the shorthand's counter
    ("limited", {}, None),
    ("limited", {}, "Rate limit of 3 per hour reached. Try again later."),
    ("spend", {"amount": 4}, None),
    ("spend", {"amount": 4.9}, None),  # counts 4: the whole-number part
    ("spend", {"amount": 2}, "Rate limit exceeded for budget"),  # 8 + 2 is not below 10
    ("spend", {"amount": 1}, None),
    ("spend", {"amount": 0}, None),  # 0 is admitted
    ("spend", {"amount": "1"}, INTERNAL),
    ("spend", {}, INTERNAL),
    ("spend", {"amount": True}, INTERNAL),
    ("spend", {"amount": None}, INTERNAL),
    ("spend", {"amount": -3}, INTERNAL),  # divergence: Intercept would lower the counter
    ("watch", {"n": 5}, None),  # gte only: never reserves, never denied for it
    ("watch", {"n": 5}, None),
    # Intercept resolves the amount before it looks for a limit, so a rule that never reserves still needs one.
    (
        "watch",
        {},
        "Internal policy error: args.n must be a number of at least 0; it is what a call adds to "
        'counter "seen" of rule "counted-never"',
    ),
    ("peek", {}, None),  # seen was never written: it exists, with value 0
    ("capped", {}, None),
    ("capped", {}, None),
    ("capped", {}, "capped for today"),
]


async def run_table(tmp_path: Path, policy_text: str, rows: list[Row], *flags: str) -> list[str]:
    """Call every row through one regogate session; return the rows that came out differently."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text, encoding="utf-8")
    tools = sorted({tool for tool, _, _ in rows})
    server = [sys.executable, str(SERVERS / "any_args_server.py"), *tools]
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    wrong: list[str] = []
    with anyio.fail_after(TABLE_TIMEOUT):
        async with gated_session(policy, server, "--state", "memory", *flags, env=env) as session:
            for number, (tool, arguments, expected) in enumerate(rows):
                result = await session.call_tool(tool, arguments)
                got = text(result)
                outcome = got.removeprefix(DENIED) if result.is_error and got.startswith(DENIED) else None
                if not result.is_error and got != f"ok {tool}":
                    outcome = f"unexpected answer {got!r}"
                if outcome != expected:
                    wrong.append(f"row {number}: {tool} {arguments}: expected {expected!r}, got {outcome!r}")
    return wrong


async def test_comparison_operators_decide_as_intercept(tmp_path: Path) -> None:
    assert await run_table(tmp_path, COMPARISONS, COMPARISON_ROWS) == []


async def test_counters_and_limits_decide_as_intercept(tmp_path: Path) -> None:
    assert await run_table(tmp_path, COUNTERS, COUNTER_ROWS) == []
