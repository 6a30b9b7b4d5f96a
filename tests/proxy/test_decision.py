"""The OPA input documents regogate builds and the decisions it accepts (rego/README.md)."""

from __future__ import annotations

import json

import pytest

from regogate.core import DecisionError
from regogate.proxy.policy._decision import (
    CallInput,
    Decision,
    ListInput,
    RateLimitDeclaration,
    Reason,
    parse_decision,
)

CALL_SNAPSHOT = """{
  "client": {
    "name": "claude-code",
    "version": "2.1.0"
  },
  "kind": "tools/call",
  "principal": {
    "id": "alice",
    "team": "payments"
  },
  "request": {
    "id": 7,
    "protocol_version": "2025-11-25"
  },
  "server": {
    "id": "python"
  },
  "state": {
    "create_charge": {
      "daily_spend": 4200
    }
  },
  "time": {
    "rfc3339": "2026-11-18T11:06:40Z",
    "unix_ns": 1795000000000000000
  },
  "tool": {
    "annotations": {
      "destructiveHint": false
    },
    "arguments": {
      "packages": [
        "requests"
      ]
    },
    "input_schema": {
      "required": [
        "packages"
      ],
      "type": "object"
    },
    "name": "pip-install"
  },
  "version": 1
}"""

LIST_SNAPSHOT = """{
  "client": {},
  "kind": "tools/list",
  "principal": {
    "id": "alice"
  },
  "server": {
    "id": "python"
  },
  "tools": [
    {
      "annotations": {},
      "name": "conda"
    },
    {
      "name": "pip-list"
    }
  ],
  "version": 1
}"""

GOOD_LIMIT = {
    "key": "pip-install/_rate_hour",
    "limit": 5,
    "window": "hour",
    "cost": 1,
    "rule": "hourly",
    "message": "Rate limit of 5 per hour reached. Try again later.",
}


def _snapshot(document: object) -> str:
    return json.dumps(document, sort_keys=True, indent=2)


def test_call_input_document_matches_the_snapshot() -> None:
    call = CallInput(
        server_id="python",
        tool_name="pip-install",
        arguments={"packages": ["requests"]},
        request_id=7,
        now=1_795_000_000.0,
        client={"name": "claude-code", "version": "2.1.0"},
        protocol_version="2025-11-25",
        input_schema={"type": "object", "required": ["packages"]},
        annotations={"destructiveHint": False},
        state={"create_charge": {"daily_spend": 4200}},
        principal={"id": "alice", "team": "payments"},
    )
    assert _snapshot(call.to_document()) == CALL_SNAPSHOT


def test_call_input_leaves_out_what_regogate_does_not_know() -> None:
    call = CallInput(server_id="s", tool_name="t", arguments={}, request_id="a", now=1_795_000_000.75)
    document = call.to_document()
    assert document["request"] == {"id": "a"}
    assert document["tool"] == {"name": "t", "arguments": {}}
    assert document["client"] == {}
    assert document["state"] == {}
    assert document["principal"] == {}
    assert document["time"] == {"unix_ns": 1_795_000_000_750_000_000, "rfc3339": "2026-11-18T11:06:40Z"}


def test_list_input_document_matches_the_snapshot() -> None:
    tools = (
        {"name": "conda", "annotations": {}, "description": "not for OPA"},
        {"name": "pip-list", "annotations": None},
    )
    listing = ListInput(server_id="python", tools=tools, principal={"id": "alice"})
    assert _snapshot(listing.to_document()) == LIST_SNAPSHOT


@pytest.mark.parametrize("allow", [True, False])
def test_a_bare_boolean_is_a_decision(allow: bool) -> None:
    decision = parse_decision(allow, kind="tools/call", decision_id="d-1")
    assert decision == Decision(allow=allow, decision_id="d-1")
    assert decision.message == "Denied by policy"


def test_an_object_decision_keeps_reasons_in_order_and_limits() -> None:
    result = {
        "allow": False,
        "reasons": [
            {"rule": "hidden", "message": "first", "order": 0},
            {"rule": "other", "message": "second"},
        ],
        "rate_limits": [GOOD_LIMIT, {**GOOD_LIMIT, "limit": None, "cost": 3.5}],
        "unknown": "ignored",
    }
    decision = parse_decision(result, kind="tools/call")
    assert decision.reasons == (Reason("hidden", "first"), Reason("other", "second"))
    assert decision.message == "first"
    assert decision.rate_limits == (
        RateLimitDeclaration(
            "pip-install/_rate_hour", 5.0, "hour", 1.0, "hourly", "Rate limit of 5 per hour reached. Try again later."
        ),
        RateLimitDeclaration(
            "pip-install/_rate_hour", None, "hour", 3.5, "hourly", "Rate limit of 5 per hour reached. Try again later."
        ),
    )


def test_an_allow_without_optional_keys_has_empty_defaults() -> None:
    assert parse_decision({"allow": True}, kind="tools/call") == Decision(allow=True)


def test_hidden_counts_for_tools_list_only() -> None:
    result = {"allow": True, "hidden": ["conda"], "rate_limits": [GOOD_LIMIT]}
    listed = parse_decision(result, kind="tools/list")
    assert listed.hidden == frozenset({"conda"})
    assert listed.rate_limits == ()
    assert listed.is_hidden("conda")
    assert not listed.is_hidden("pip-list")
    called = parse_decision(result, kind="tools/call")
    assert called.hidden == frozenset()
    assert len(called.rate_limits) == 1


def test_a_false_tools_list_decision_hides_every_tool() -> None:
    assert parse_decision(False, kind="tools/list").is_hidden("anything")


@pytest.mark.parametrize(
    ("result", "detail"),
    [
        (None, "the decision (a boolean or an object) must be an object, got null"),
        ("true", "must be an object, got string"),
        ([True], "must be an object, got array"),
        ({}, "allow must be a boolean, got null"),
        ({"allow": 1}, "allow must be a boolean, got number"),
        ({"allow": "yes"}, "allow must be a boolean, got string"),
        ({"allow": False, "reasons": "no"}, "reasons must be an array, got string"),
        ({"allow": False, "reasons": ["no"]}, "reasons[0] must be an object, got string"),
        ({"allow": False, "reasons": [{"message": "m"}]}, "reasons[0].rule must be a string, got null"),
        ({"allow": False, "reasons": [{"rule": "r", "message": 3}]}, "reasons[0].message must be a string"),
        ({"allow": True, "rate_limits": {}}, "rate_limits must be an array, got object"),
        ({"allow": True, "rate_limits": [1]}, "rate_limits[0] must be an object, got number"),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "key": 1}]}, "rate_limits[0].key must be a string"),
        (
            {"allow": True, "rate_limits": [{k: v for k, v in GOOD_LIMIT.items() if k != "limit"}]},
            "rate_limits[0].limit is required",
        ),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "limit": "5"}]}, "limit must be a number or null"),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "limit": True}]}, "limit must be a number or null"),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "window": "week"}]}, "window must be one of"),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "cost": -2}]}, "cost must be at least 0, got -2"),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "exclusive": "yes"}]}, "exclusive must be a boolean"),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "cost": "1"}]}, "cost must be a number, got string"),
        ({"allow": True, "rate_limits": [GOOD_LIMIT, {**GOOD_LIMIT, "rule": None}]}, "rate_limits[1].rule"),
        ({"allow": True, "rate_limits": [{**GOOD_LIMIT, "message": []}]}, "rate_limits[0].message"),
        ({"allow": True, "hidden": "conda"}, "hidden must be an array, got string"),
        ({"allow": True, "hidden": ["conda", 2]}, "hidden[1] must be a string, got number"),
    ],
)
def test_a_malformed_decision_is_refused_naming_the_field(result: object, detail: str) -> None:
    with pytest.raises(DecisionError) as caught:
        parse_decision(result, kind="tools/call")
    assert caught.value.code == "decision_malformed"
    assert detail in caught.value.detail
