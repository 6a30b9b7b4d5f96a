package regogate.gate_test

import data.regogate.gate

_policies := {"demo": {
	"deny": {
		{"order": 5, "rule": "late", "message": "second"},
		{"order": 2, "rule": "early", "message": "first"},
	},
	"rate_limits": {
		{"key": "b/_rate_hour", "limit": 3, "window": "hour", "cost": 1, "rule": "b", "message": "slow down"},
		{"key": "a/_rate_minute", "limit": 1, "window": "minute", "cost": 1, "rule": "a", "message": "wait"},
	},
	"hidden_tools": {"secret"},
	"hides_all": false,
}}

_clean := {"demo": {"deny": set(), "rate_limits": {{"key": "a/x", "limit": 2, "window": "day", "cost": 1, "rule": "a", "message": "m"}}, "hidden_tools": set(), "hides_all": false}}

_call := {"version": 1, "kind": "tools/call", "server": {"id": "demo"}, "tool": {"name": "x", "arguments": {}}}

_list := {"version": 1, "kind": "tools/list", "server": {"id": "demo"}, "tools": [{"name": "secret"}, {"name": "open"}]}

test_decision_allows_and_declares_limits_when_nothing_denies if {
	d := gate.decision with input as _call with data.regogate.policies as _clean
	d.allow == true
	d.reasons == []
	d.rate_limits == [{"key": "a/x", "limit": 2, "window": "day", "cost": 1, "rule": "a", "message": "m"}]
}

test_decision_orders_reasons_and_declares_no_limits_when_denied if {
	d := gate.decision with input as _call with data.regogate.policies as _policies
	d.allow == false
	d.reasons == [{"rule": "early", "message": "first"}, {"rule": "late", "message": "second"}]
	d.rate_limits == []
}

test_rate_limits_are_sorted_by_key if {
	limits := gate.rate_limits with input as _call with data.regogate.policies as _policies
	[l.key | some l in limits] == ["a/_rate_minute", "b/_rate_hour"]
}

test_extension_reasons_without_order_come_last if {
	ext := {"audit": {"deny": {{"rule": "ext", "message": "from an extension"}}}}
	d := gate.decision with input as _call with data.regogate.policies as _policies with data.regogate.extensions as ext
	d.reasons[2] == {"rule": "ext", "message": "from an extension"}
}

test_extension_alone_denies_a_clean_policy if {
	ext := {"audit": {"deny": {{"rule": "ext", "message": "no", "order": 0}}}}
	d := gate.decision with input as _call with data.regogate.policies as _clean with data.regogate.extensions as ext
	d.allow == false
	d.reasons == [{"rule": "ext", "message": "no"}]
	d.rate_limits == []
}

test_list_hides_named_tools if {
	d := gate.decision with input as _list with data.regogate.policies as _policies
	d.allow == true
	d.hidden == ["secret"]
}

test_list_hides_everything_with_hides_all if {
	all_hidden := {"demo": object.union(_policies.demo, {"hides_all": true})}
	d := gate.decision with input as _list with data.regogate.policies as all_hidden
	d.hidden == ["open", "secret"]
}

test_unknown_server_is_denied_with_reason if {
	d := gate.decision with input as object.union(_call, {"server": {"id": "nope"}}) with data.regogate.policies as _policies
	d.allow == false
	d.reasons[0].rule == "regogate.no_policy"
	contains(d.reasons[0].message, `"nope"`)
}

test_wrong_contract_version_is_denied if {
	d := gate.decision with input as object.union(_call, {"version": 2}) with data.regogate.policies as _policies
	d.allow == false
	d.reasons[0].rule == "regogate.bad_input"
}

_asking := {"demo": {
	"deny": set(),
	"rate_limits": {{"key": "x/_rate_day", "limit": 5, "window": "day", "cost": 1, "rule": "r", "message": "m"}},
	"approvals": {
		{"order": 7, "rule": "later", "message": "second asks", "timeout": 60},
		{"order": 3, "rule": "sooner", "message": "first asks", "timeout": 300},
	},
	"hidden_tools": set(),
	"hides_all": false,
}}

test_decision_asks_for_approval_before_anything_is_reserved if {
	d := gate.decision with input as _call with data.regogate.policies as _asking
	d.allow == false
	d.approval == {"rule": "sooner", "message": "first asks", "timeout": 300}
	d.reasons == [{"rule": "sooner", "message": "first asks"}]
	d.rate_limits == []
}

test_decision_allows_an_approved_call_and_declares_its_limits if {
	approved := object.union(_call, {"approval": {"id": "apr-x", "by": "ana", "via": "cli"}})
	d := gate.decision with input as approved with data.regogate.policies as _asking
	d.allow == true
	not d.approval
	count(d.rate_limits) == 1
}

test_a_denial_wins_over_an_approval_request if {
	policies := {"demo": object.union(_asking.demo, {"deny": {{"order": 1, "rule": "no", "message": "never"}}})}
	d := gate.decision with input as _call with data.regogate.policies as policies
	d.allow == false
	not d.approval
	d.reasons == [{"rule": "no", "message": "never"}]
}

test_decision_allows_a_tool_without_limits_with_an_empty_list if {
	no_limits := {"demo": object.union(_clean.demo, {"rate_limits": set()})}
	d := gate.decision with input as _call with data.regogate.policies as no_limits
	d == {"allow": true, "reasons": [], "rate_limits": []}
}

test_list_for_an_unknown_server_hides_nothing_and_says_why if {
	d := gate.decision with input as object.union(_list, {"server": {"id": "nope"}}) with data.regogate.policies as _policies
	d.allow == false
	d.hidden == []
	d.reasons[0].rule == "regogate.no_policy"
}

test_unknown_kind_is_bad_input if {
	d := gate.decision with input as object.union(_call, {"kind": "resources/read"}) with data.regogate.policies as _policies
	d.reasons[0].rule == "regogate.bad_input"
}

# A policy that decides its allowed calls itself; the marker limit shows which path answered.
_deciding := {"demo": object.union(_clean.demo, {"allowed_call": {
	"allow": true,
	"reasons": [],
	"rate_limits": [{"key": "fast/x", "limit": 1, "window": "day", "cost": 1, "rule": "fast", "message": "m"}],
}})}

test_decision_takes_the_policys_allowed_call if {
	d := gate.decision with input as _call with data.regogate.policies as _deciding
	d.rate_limits[0].key == "fast/x"
}

test_decision_builds_the_document_when_an_extension_is_loaded if {
	ext := {"audit": {"deny": set()}}
	d := gate.decision with input as _call with data.regogate.policies as _deciding with data.regogate.extensions as ext
	d == {"allow": true, "reasons": [], "rate_limits": [{"key": "a/x", "limit": 2, "window": "day", "cost": 1, "rule": "a", "message": "m"}]}
}

test_an_extension_denies_a_call_the_policy_allows_itself if {
	ext := {"audit": {"deny": {{"rule": "ext", "message": "no", "order": 0}}}}
	d := gate.decision with input as _call with data.regogate.policies as _deciding with data.regogate.extensions as ext
	d.allow == false
	d.reasons == [{"rule": "ext", "message": "no"}]
}

test_allowed_call_is_not_read_for_another_contract_version if {
	d := gate.decision with input as object.union(_call, {"version": 2}) with data.regogate.policies as _deciding
	d.reasons[0].rule == "regogate.bad_input"
}

test_generic_call_decision_ignores_allowed_call if {
	d := gate.generic_call_decision with input as _call with data.regogate.policies as _deciding
	d.rate_limits[0].key == "a/x"
}

test_decision_reads_inputs_of_the_contract_version_it_declares if {
	call := object.union(_call, {"version": gate.contract_version})
	list := object.union(_list, {"version": gate.contract_version})
	fast := gate.decision with input as call with data.regogate.policies as _deciding
	fast.rate_limits[0].key == "fast/x"
	generic := gate.decision with input as call with data.regogate.policies as _clean
	generic.allow == true
	listed := gate.decision with input as list with data.regogate.policies as _policies
	listed.hidden == ["secret"]
}
