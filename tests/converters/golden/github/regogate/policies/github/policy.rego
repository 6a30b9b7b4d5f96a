# METADATA
# title: "GitHub MCP server policy"
# description: "Converted by regogate from policies/github.yaml; convert again, do not edit."
# custom:
#   source: policies/github.yaml
#   server_id: github
#   default: deny
package regogate.policies.github

# Tools listed under `tools`.
listed_tools := {"create_issue", "create_pull_request", "delete_branch", "get_file_contents", "merge_pull_request", "push_files", "search_code"}

# Tools named under `hide`.
hidden_tools := {"delete_repository"}

hides_all := false

# METADATA
# title: hide
# description: "Tool \"<name>\" is hidden by policy"
# custom:
#   source: policies/github.yaml:7
deny contains {"order": 0, "rule": "hide", "message": sprintf("Tool %q is hidden by policy", [input.tool.name])} if {
	input.tool.name in hidden_tools
}

# METADATA
# title: default
# description: "Tool \"<name>\" is not permitted by policy"
# custom:
#   source: policies/github.yaml:5
deny contains {"order": 1, "rule": "default", "message": sprintf("Tool %q is not permitted by policy", [input.tool.name])} if {
	not input.tool.name in listed_tools
}

# METADATA
# title: search-rate
# description: "Code search is limited to 30 queries a minute"
# custom:
#   source: policies/github.yaml:13
#   tool: search_code
#   action: evaluate
deny contains {"order": 2, "rule": "search-rate", "message": "Code search is limited to 30 queries a minute"} if {
	input.tool.name == "search_code"
	not search_rate_passes
}

# search_rate_passes holds when every condition of search-rate holds.
search_rate_passes if {
	is_number(counter("search_code", "_rate_minute"))
	counter("search_code", "_rate_minute") <= 30
}

# METADATA
# title: search-rate
# description: "Code search is limited to 30 queries a minute"
# custom:
#   source: policies/github.yaml:13
#   tool: search_code
#   action: evaluate
rate_limits contains {"key": "search_code/_rate_minute", "limit": 30, "exclusive": false, "window": "minute", "cost": 1, "rule": "search-rate", "message": "Code search is limited to 30 queries a minute"} if {
	input.tool.name == "search_code"
}

# METADATA
# title: issue-needs-title
# description: "cannot check the arguments: the input schema of this tool is unknown"
# custom:
#   source: policies/github.yaml:18
#   tool: create_issue
#   action: evaluate
deny contains {"order": 3, "rule": "issue-needs-title", "message": "cannot check the arguments: the input schema of this tool is unknown"} if {
	input.tool.name == "create_issue"
	not input.tool.input_schema
}

# METADATA
# title: issue-needs-title
# description: "missing required argument <name>"
# custom:
#   source: policies/github.yaml:18
#   tool: create_issue
#   action: evaluate
deny contains {"order": 3, "rule": "issue-needs-title", "message": sprintf("missing required argument %q", [name])} if {
	input.tool.name == "create_issue"
	some name in input.tool.input_schema.required
	not argument_present(input.tool.arguments, name)
}

# METADATA
# title: issue-title-length
# description: "Issue titles must be 5 to 120 characters"
# custom:
#   source: policies/github.yaml:21
#   tool: create_issue
#   action: evaluate
deny contains {"order": 4, "rule": "issue-title-length", "message": "Issue titles must be 5 to 120 characters"} if {
	input.tool.name == "create_issue"
	not issue_title_length_passes
}

# issue_title_length_passes holds when every condition of issue-title-length holds.
issue_title_length_passes if {
	is_string(input.tool.arguments.title)
	regex.match(`^.{5,120}$`, input.tool.arguments.title)
}

# METADATA
# title: issue-needs-triage-label
# description: "New issues must carry the needs-triage label"
# custom:
#   source: policies/github.yaml:27
#   tool: create_issue
#   action: evaluate
deny contains {"order": 5, "rule": "issue-needs-triage-label", "message": "New issues must carry the needs-triage label"} if {
	input.tool.name == "create_issue"
	not issue_needs_triage_label_passes
}

# issue_needs_triage_label_passes holds when every condition of issue-needs-triage-label holds.
issue_needs_triage_label_passes if {
	contains_value(input.tool.arguments.labels, "needs-triage")
}

# METADATA
# title: no-force-push
# description: "Force pushes are blocked by policy"
# custom:
#   source: policies/github.yaml:36
#   tool: push_files
#   action: evaluate
deny contains {"order": 6, "rule": "no-force-push", "message": "Force pushes are blocked by policy"} if {
	input.tool.name == "push_files"
	not no_force_push_passes
}

# no_force_push_passes holds when every condition of no-force-push holds.
no_force_push_passes if {
	force_value := input.tool.arguments.force
	not force_value in {true, "true"}
}

# METADATA
# title: protected-branches
# description: "Pushes to protected branches need a pull request"
# custom:
#   source: policies/github.yaml:42
#   tool: push_files
#   action: evaluate
deny contains {"order": 7, "rule": "protected-branches", "message": "Pushes to protected branches need a pull request"} if {
	input.tool.name == "push_files"
	not protected_branches_passes
}

# protected_branches_passes holds when every condition of protected-branches holds.
protected_branches_passes if {
	branch_value := input.tool.arguments.branch
	not branch_value in {"main", "master", "release"}
}

# METADATA
# title: push-budget
# description: "Rate limit of 20 per hour reached. Try again later."
# custom:
#   source: policies/github.yaml:48
#   tool: push_files
#   action: evaluate
deny contains {"order": 8, "rule": "push-budget", "message": "Rate limit of 20 per hour reached. Try again later."} if {
	input.tool.name == "push_files"
	not push_budget_passes
}

# push_budget_passes holds when every condition of push-budget holds.
push_budget_passes if {
	is_number(counter("push_files", "_rate_hour"))
	counter("push_files", "_rate_hour") <= 20
}

# METADATA
# title: push-budget
# description: "Rate limit of 20 per hour reached. Try again later."
# custom:
#   source: policies/github.yaml:48
#   tool: push_files
#   action: evaluate
rate_limits contains {"key": "push_files/_rate_hour", "limit": 20, "exclusive": false, "window": "hour", "cost": 1, "rule": "push-budget", "message": "Rate limit of 20 per hour reached. Try again later."} if {
	input.tool.name == "push_files"
}

# METADATA
# title: merge-needs-approval
# description: "requires a person's approval"
# custom:
#   source: policies/github.yaml:52
#   tool: merge_pull_request
#   action: require_approval
approvals contains {"order": 9, "rule": "merge-needs-approval", "message": sprintf("Tool %q requires a person's approval", [input.tool.name]), "timeout": 600} if {
	input.tool.name == "merge_pull_request"
	input.tool.arguments.merge_method == "squash"
}

# METADATA
# title: pr-base-allowed
# description: "Denied by rule \"pr-base-allowed\""
# custom:
#   source: policies/github.yaml:61
#   tool: create_pull_request
#   action: evaluate
deny contains {"order": 10, "rule": "pr-base-allowed", "message": "Denied by rule \"pr-base-allowed\""} if {
	input.tool.name == "create_pull_request"
	not pr_base_allowed_passes
}

# pr_base_allowed_passes holds when every condition of pr-base-allowed holds.
pr_base_allowed_passes if {
	input.tool.arguments.base in {"main", "develop"}
	input.tool.arguments.draft != null
}

# METADATA
# title: delete_branch[0]
# description: "Branch deletion is done by humans"
# custom:
#   source: policies/github.yaml:71
#   tool: delete_branch
#   action: deny
deny contains {"order": 11, "rule": "delete_branch[0]", "message": "Branch deletion is done by humans"} if {
	input.tool.name == "delete_branch"
}

# METADATA
# title: global-call-budget
# description: "Rate limit of 600 per hour reached. Try again later."
# custom:
#   source: policies/github.yaml:75
#   tool: "*"
#   action: evaluate
deny contains {"order": 12, "rule": "global-call-budget", "message": "Rate limit of 600 per hour reached. Try again later."} if {
	not global_call_budget_passes
}

# global_call_budget_passes holds when every condition of global-call-budget holds.
global_call_budget_passes if {
	is_number(counter("_global", "_rate_hour"))
	counter("_global", "_rate_hour") <= 600
}

# METADATA
# title: global-call-budget
# description: "Rate limit of 600 per hour reached. Try again later."
# custom:
#   source: policies/github.yaml:75
#   tool: "*"
#   action: evaluate
rate_limits contains {"key": "_global/_rate_hour", "limit": 600, "exclusive": false, "window": "hour", "cost": 1, "rule": "global-call-budget", "message": "Rate limit of 600 per hour reached. Try again later."}

# METADATA
# title: "allowed_call get_file_contents"
# description: "The gate's decision for a call to get_file_contents that every rule lets through"
# custom:
#   source: policies/github.yaml:10
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/_rate_hour", "limit": 600, "exclusive": false, "window": "hour", "cost": 1, "rule": "global-call-budget", "message": "Rate limit of 600 per hour reached. Try again later."}]} if {
	input.tool.name == "get_file_contents"

	# global-call-budget
	is_number(counter("_global", "_rate_hour"))
	counter("_global", "_rate_hour") <= 600
}

# METADATA
# title: "allowed_call search_code"
# description: "The gate's decision for a call to search_code that every rule lets through"
# custom:
#   source: policies/github.yaml:12
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/_rate_hour", "limit": 600, "exclusive": false, "window": "hour", "cost": 1, "rule": "global-call-budget", "message": "Rate limit of 600 per hour reached. Try again later."}, {"key": "search_code/_rate_minute", "limit": 30, "exclusive": false, "window": "minute", "cost": 1, "rule": "search-rate", "message": "Code search is limited to 30 queries a minute"}]} if {
	input.tool.name == "search_code"

	# search-rate
	is_number(counter("search_code", "_rate_minute"))
	counter("search_code", "_rate_minute") <= 30

	# global-call-budget
	is_number(counter("_global", "_rate_hour"))
	counter("_global", "_rate_hour") <= 600
}

# METADATA
# title: "allowed_call create_issue"
# description: "The gate's decision for a call to create_issue that every rule lets through"
# custom:
#   source: policies/github.yaml:17
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/_rate_hour", "limit": 600, "exclusive": false, "window": "hour", "cost": 1, "rule": "global-call-budget", "message": "Rate limit of 600 per hour reached. Try again later."}]} if {
	input.tool.name == "create_issue"

	# issue-needs-title
	input.tool.input_schema
	every name in object.get(input.tool, ["input_schema", "required"], []) {
		argument_present(input.tool.arguments, name)
	}

	# issue-title-length
	is_string(input.tool.arguments.title)
	regex.match(`^.{5,120}$`, input.tool.arguments.title)

	# issue-needs-triage-label
	contains_value(input.tool.arguments.labels, "needs-triage")

	# global-call-budget
	is_number(counter("_global", "_rate_hour"))
	counter("_global", "_rate_hour") <= 600
}

# METADATA
# title: "allowed_call push_files"
# description: "The gate's decision for a call to push_files that every rule lets through"
# custom:
#   source: policies/github.yaml:35
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/_rate_hour", "limit": 600, "exclusive": false, "window": "hour", "cost": 1, "rule": "global-call-budget", "message": "Rate limit of 600 per hour reached. Try again later."}, {"key": "push_files/_rate_hour", "limit": 20, "exclusive": false, "window": "hour", "cost": 1, "rule": "push-budget", "message": "Rate limit of 20 per hour reached. Try again later."}]} if {
	input.tool.name == "push_files"

	# no-force-push
	force_value := input.tool.arguments.force
	not force_value in {true, "true"}

	# protected-branches
	branch_value := input.tool.arguments.branch
	not branch_value in {"main", "master", "release"}

	# push-budget
	is_number(counter("push_files", "_rate_hour"))
	counter("push_files", "_rate_hour") <= 20

	# global-call-budget
	is_number(counter("_global", "_rate_hour"))
	counter("_global", "_rate_hour") <= 600
}

# METADATA
# title: "allowed_call create_pull_request"
# description: "The gate's decision for a call to create_pull_request that every rule lets through"
# custom:
#   source: policies/github.yaml:60
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/_rate_hour", "limit": 600, "exclusive": false, "window": "hour", "cost": 1, "rule": "global-call-budget", "message": "Rate limit of 600 per hour reached. Try again later."}]} if {
	input.tool.name == "create_pull_request"

	# pr-base-allowed
	input.tool.arguments.base in {"main", "develop"}
	input.tool.arguments.draft != null

	# global-call-budget
	is_number(counter("_global", "_rate_hour"))
	counter("_global", "_rate_hour") <= 600
}

# argument_present holds when the argument is there and neither null nor an empty string.
argument_present(arguments, name) if {
	value := arguments[name]
	value != null
	value != ""
}

# contains_value holds when needle is a substring of a string haystack or a member of a list haystack.
contains_value(haystack, needle) if {
	is_string(haystack)
	is_string(needle)
	contains(haystack, needle)
}

contains_value(haystack, needle) if {
	is_array(haystack)
	needle in haystack
}

# counter is a counter's value in its current window, as the proxy reads it; one never written is 0.
counter(scope, name) := object.get(input.state, [scope, name], 0)
