# METADATA
# title: regogate gate
# description: |
#   The decision regogate asks for every tools/call and tools/list (contract version 1, see
#   rego/README.md). It selects the converted policy of input.server.id, adds the deny reasons of
#   every extension package, orders them, and declares the rate limits of an allowed call.
package regogate.gate

contract_version := 1

# A policy is loaded for the server this input comes from (every converted policy defines hides_all).
policy_loaded if is_boolean(data.regogate.policies[input.server.id].hides_all)

# Violations from the server's policy and from every extension package.
violations contains violation if {
	some violation in data.regogate.policies[input.server.id].deny
}

violations contains violation if {
	some extension in data.regogate.extensions
	some violation in extension.deny
}

# Extension reasons without an order sort after every converted rule.
_order(violation) := object.get(violation, "order", 1e9)

# The denial reasons, first reason first.
reasons := [{"rule": rule, "message": message} |
	some [_, rule, message] in sort([[_order(v), v.rule, v.message] | some v in violations])
]

# The limits an allowed call must reserve, in a stable order.
rate_limits := [limit |
	some [_, limit] in sort([[l.key, l] | some l in data.regogate.policies[input.server.id].rate_limits])
]

# Approval requests of the server's policy (require_approval rules whose conditions hold), first first.
_approval_requests := [request |
	some [_, request] in sort([[r.order, {"rule": r.rule, "message": r.message, "timeout": r.timeout}] |
		some r in data.regogate.policies[input.server.id].approvals
	])
]

# regogate sets input.approval only after a person approved this very call.
approved if is_string(input.approval.id)

# An otherwise allowed call that waits for a person: the first request is the obligation.
approval_pending if {
	count(violations) == 0
	count(_approval_requests) > 0
	not approved
}

# Tool names the client must not see.
hidden contains name if {
	some name in (_listed_names & data.regogate.policies[input.server.id].hidden_tools)
}

hidden contains name if {
	data.regogate.policies[input.server.id].hides_all
	some name in _listed_names
}

_listed_names := {tool.name | some tool in input.tools}

_no_policy_reason := {
	"rule": "regogate.no_policy",
	"message": sprintf("no policy is loaded for server id %q", [input.server.id]),
}

# METADATA
# description: The decision document for tools/call and tools/list inputs.
# entrypoint: true
default decision := {"allow": false, "reasons": [{"rule": "regogate.bad_input", "message": "input is not a version 1 tools/call or tools/list"}], "rate_limits": []}

# A converted policy decides the calls it lets through itself (its allowed_call, one rule per tool that
# OPA's index picks by name); the gate takes that decision while no extension is loaded. Every other
# call, and every call under a policy without allowed_call, gets generic_call_decision, which builds
# the same document from the policy's rule sets. The version is compared with the literal 1
# (contract_version): a reference to that rule would cost each decision another rule evaluation.
decision := allowed if {
	input.kind == "tools/call"
	input.version == 1
	allowed := data.regogate.policies[input.server.id].allowed_call
	not data.regogate.extensions
} else := generic_call_decision if {
	input.kind == "tools/call"
	input.version == 1
}

decision := {"allow": true, "reasons": [], "hidden": sort(hidden)} if {
	input.kind == "tools/list"
	input.version == 1
	policy_loaded
} else := _no_policy if {
	input.kind == "tools/list"
	input.version == 1
}

# METADATA
# description: |
#   The decision for a tools/call, built from the deny, approvals and rate_limits sets of the
#   server's policy and the deny sets of the extensions. An allowed call evaluates only the deny
#   rules, the approval requests and whether it declares limits: reasons are built and sorted only
#   for a denial, limits only when there are some.
generic_call_decision := {"allow": true, "reasons": [], "rate_limits": []} if {
	policy_loaded
	not _denied
	not _awaits_approval
	not _limited
} else := {"allow": true, "reasons": [], "rate_limits": rate_limits} if {
	policy_loaded
	not _denied
	not _awaits_approval
} else := {
	"allow": false,
	"reasons": [{"rule": _approval_requests[0].rule, "message": _approval_requests[0].message}],
	"rate_limits": [],
	"approval": _approval_requests[0],
} if {
	policy_loaded
	approval_pending
} else := {"allow": false, "reasons": reasons, "rate_limits": []} if {
	policy_loaded
} else := _no_policy

_denied if {
	some _ in data.regogate.policies[input.server.id].deny
}

_denied if {
	some extension in data.regogate.extensions
	some _ in extension.deny
}

_awaits_approval if {
	some _ in data.regogate.policies[input.server.id].approvals
	not approved
}

_limited if {
	some _ in data.regogate.policies[input.server.id].rate_limits
}

_no_policy := {"allow": false, "reasons": [_no_policy_reason], "rate_limits": [], "hidden": []}
