"""Every policy that `validate` accepts starts, whatever its file is called.

Hypothesis generates policies from the YAML grammar (deny rules, rate limits, counters read by other
tools' conditions, hidden tools, defaults) and file names (Rego keywords, builtin names, digits,
dashes, non-ASCII); each accepted policy is started through the real `regogate` command with an
upstream that exits at once, which must end with status 0 and without a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from regogate.converters import load_policy
from tests.conftest import find_opa_binary

REGOGATE = str(Path(sys.executable).parent / "regogate")
#: Each example starts OPA once (about a second on a loaded 2-core machine): keep the count small.
EXAMPLES = 8
START_TIMEOUT = 60.0

#: Names that once broke generated Rego: keywords, builtins and names the generated tests use.
AWKWARD = ["limit", "default", "import", "every", "contains", "input", "data", "count", "rules", "policy", "some"]
FILE_NAMES = st.one_of(
    st.sampled_from([*AWKWARD, "1", "_x", "my-policy", "Ünï-côde", "a.b", "with space", "UPPER"]),
    st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True),
)
NAMES = st.one_of(st.sampled_from(AWKWARD), st.from_regex(r"[a-z][a-z0-9_\-]{0,8}", fullmatch=True))
WINDOWS = st.sampled_from(["minute", "hour", "day"])
ARG = st.one_of(st.sampled_from(AWKWARD), st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True))


@st.composite
def argument_condition(draw: st.DrawFn) -> dict[str, Any]:
    path = "args." + draw(ARG)
    op = draw(st.sampled_from(["eq", "neq", "in", "not_in", "lt", "gte", "regex", "contains", "exists"]))
    value: object
    if op in ("lt", "gte"):
        value = draw(st.integers(-5, 100))
    elif op in ("in", "not_in"):
        value = draw(st.lists(st.text(max_size=5), min_size=1, max_size=3))
    elif op == "regex":
        value = draw(st.sampled_from(["^a", "[0-9]+", "x|y"]))
    elif op == "exists":
        value = draw(st.booleans())
    else:
        value = draw(st.text(max_size=8))
    return {"path": path, "op": op, "value": value}


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    tools = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        tools.append("*")
    counters: list[str] = []  # state.<scope>.<counter> paths a later rule may read
    declared: set[tuple[str, str]] = set()
    document: dict[str, Any] = {"version": "1", "tools": {}}
    for tool in tools:
        scope = "_global" if tool == "*" else tool
        rules: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["deny", "rate_limit", "counter", "conditions"]))
            rule: dict[str, Any]
            if kind == "deny":
                rule = {
                    "action": "deny",
                    "on_deny": draw(st.from_regex(r"[A-Za-z][A-Za-z .,!-]{0,19}", fullmatch=True)),
                }
            elif kind == "rate_limit":
                window = draw(WINDOWS)
                if (scope, f"_rate_{window}") in declared:
                    continue
                declared.add((scope, f"_rate_{window}"))
                counters.append(f"state.{scope}._rate_{window}")
                rule = {"action": "allow", "rate_limit": f"{draw(st.integers(1, 50))}/{window}"}
            elif kind == "counter":
                name = draw(NAMES).replace("-", "_")
                if (scope, name) in declared:
                    continue
                declared.add((scope, name))
                state: dict[str, Any] = {"counter": name, "window": draw(WINDOWS)}
                if draw(st.booleans()):
                    state["increment_from"] = "args." + draw(ARG)
                rule = {
                    "action": "evaluate",
                    "state": state,
                    "conditions": [{"path": f"state.{scope}.{name}", "op": "lte", "value": draw(st.integers(1, 9))}],
                }
            else:
                conditions = draw(st.lists(argument_condition(), min_size=1, max_size=2))
                if draw(st.booleans()) and counters:  # a condition on another rule's counter
                    conditions.append({"path": draw(st.sampled_from(counters)), "op": "lt", "value": 3})
                rule = {"action": "evaluate", "conditions": conditions}
            rules.append(rule)
        if rules:
            document["tools"][tool] = {"rules": rules}
    if draw(st.booleans()):
        document["default"] = draw(st.sampled_from(["allow", "deny"]))
    listed = [t for t in tools if t != "*"]
    if draw(st.booleans()) and listed:
        document["hide"] = draw(st.lists(st.sampled_from(listed), max_size=2, unique=True))
    return document


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each step would start OPA again
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(document=policies(), file_name=FILE_NAMES)
def test_every_policy_that_validates_starts(
    tmp_path_factory: pytest.TempPathFactory, document: dict[str, Any], file_name: str
) -> None:
    directory = tmp_path_factory.mktemp("policy")
    path = directory / f"{file_name}.yaml"
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    note(f"{path.name}:\n{text}")
    load_policy(path)  # the generator writes valid policies only: `validate` must accept each one
    env = {**os.environ, "REGOGATE_OPA": find_opa_binary(), "TMPDIR": str(directory)}
    run = subprocess.run(
        [REGOGATE, "run", "-c", str(path), "--", "true"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=START_TIMEOUT,
    )
    stderr = run.stderr.decode(errors="replace")
    assert "Traceback" not in stderr
    assert run.returncode == 0, stderr
