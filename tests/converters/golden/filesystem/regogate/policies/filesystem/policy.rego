# METADATA
# title: "Filesystem MCP server policy"
# description: "Converted by regogate from policies/filesystem.yaml; convert again, do not edit."
# custom:
#   source: policies/filesystem.yaml
#   server_id: filesystem
#   default: deny
package regogate.policies.filesystem

# Tools listed under `tools`.
listed_tools := {"create_directory", "directory_tree", "edit_file", "get_file_info", "list_allowed_directories", "list_directory", "read_file", "read_multiple_files", "read_text_file", "search_files", "write_file"}

# Tools named under `hide`.
hidden_tools := {"move_file"}

hides_all := false

# METADATA
# title: hide
# description: "Tool \"<name>\" is hidden by policy"
# custom:
#   source: policies/filesystem.yaml:7
deny contains {"order": 0, "rule": "hide", "message": sprintf("Tool %q is hidden by policy", [input.tool.name])} if {
	input.tool.name in hidden_tools
}

# METADATA
# title: default
# description: "Tool \"<name>\" is not permitted by policy"
# custom:
#   source: policies/filesystem.yaml:5
deny contains {"order": 1, "rule": "default", "message": sprintf("Tool %q is not permitted by policy", [input.tool.name])} if {
	not input.tool.name in listed_tools
}

# METADATA
# title: read-budget
# description: "Rate limit of 120 per minute reached. Try again later."
# custom:
#   source: policies/filesystem.yaml:11
#   tool: read_text_file
#   action: evaluate
deny contains {"order": 2, "rule": "read-budget", "message": "Rate limit of 120 per minute reached. Try again later."} if {
	input.tool.name == "read_text_file"
	not read_budget_passes
}

# read_budget_passes holds when every condition of read-budget holds.
read_budget_passes if {
	is_number(counter("read_text_file", "_rate_minute"))
	counter("read_text_file", "_rate_minute") <= 120
}

# METADATA
# title: read-budget
# description: "Rate limit of 120 per minute reached. Try again later."
# custom:
#   source: policies/filesystem.yaml:11
#   tool: read_text_file
#   action: evaluate
rate_limits contains {"key": "read_text_file/_rate_minute", "limit": 120, "exclusive": false, "window": "minute", "cost": 1, "rule": "read-budget", "message": "Rate limit of 120 per minute reached. Try again later."} if {
	input.tool.name == "read_text_file"
}

# METADATA
# title: directory-budget
# description: "Rate limit of 10 per minute reached. Try again later."
# custom:
#   source: policies/filesystem.yaml:29
#   tool: create_directory
#   action: evaluate
deny contains {"order": 3, "rule": "directory-budget", "message": "Rate limit of 10 per minute reached. Try again later."} if {
	input.tool.name == "create_directory"
	not directory_budget_passes
}

# directory_budget_passes holds when every condition of directory-budget holds.
directory_budget_passes if {
	is_number(counter("create_directory", "_rate_minute"))
	counter("create_directory", "_rate_minute") <= 10
}

# METADATA
# title: directory-budget
# description: "Rate limit of 10 per minute reached. Try again later."
# custom:
#   source: policies/filesystem.yaml:29
#   tool: create_directory
#   action: evaluate
rate_limits contains {"key": "create_directory/_rate_minute", "limit": 10, "exclusive": false, "window": "minute", "cost": 1, "rule": "directory-budget", "message": "Rate limit of 10 per minute reached. Try again later."} if {
	input.tool.name == "create_directory"
}

# METADATA
# title: write-text-files-only
# description: "Only .txt, .md and .json files may be written"
# custom:
#   source: policies/filesystem.yaml:33
#   tool: write_file
#   action: evaluate
deny contains {"order": 4, "rule": "write-text-files-only", "message": "Only .txt, .md and .json files may be written"} if {
	input.tool.name == "write_file"
	not write_text_files_only_passes
}

# write_text_files_only_passes holds when every condition of write-text-files-only holds.
write_text_files_only_passes if {
	is_string(input.tool.arguments.path)
	regex.match(`\.(txt|md|json)$`, input.tool.arguments.path)
}

# METADATA
# title: no-hidden-folders
# description: "Writing into hidden folders is not allowed"
# custom:
#   source: policies/filesystem.yaml:39
#   tool: write_file
#   action: evaluate
deny contains {"order": 5, "rule": "no-hidden-folders", "message": "Writing into hidden folders is not allowed"} if {
	input.tool.name == "write_file"
	not no_hidden_folders_passes
}

# no_hidden_folders_passes holds when every condition of no-hidden-folders holds.
no_hidden_folders_passes if {
	is_string(input.tool.arguments.path)
	regex.match(`^[^.]*(\.[^./][^/]*)?$`, input.tool.arguments.path)
}

# METADATA
# title: write-needs-content
# description: "cannot check the arguments: the input schema of this tool is unknown"
# custom:
#   source: policies/filesystem.yaml:45
#   tool: write_file
#   action: evaluate
deny contains {"order": 6, "rule": "write-needs-content", "message": "cannot check the arguments: the input schema of this tool is unknown"} if {
	input.tool.name == "write_file"
	not input.tool.input_schema
}

# METADATA
# title: write-needs-content
# description: "missing required argument <name>"
# custom:
#   source: policies/filesystem.yaml:45
#   tool: write_file
#   action: evaluate
deny contains {"order": 6, "rule": "write-needs-content", "message": sprintf("missing required argument %q", [name])} if {
	input.tool.name == "write_file"
	some name in input.tool.input_schema.required
	not argument_present(input.tool.arguments, name)
}

# METADATA
# title: write-budget
# description: "At most 5 writes a minute"
# custom:
#   source: policies/filesystem.yaml:48
#   tool: write_file
#   action: evaluate
deny contains {"order": 7, "rule": "write-budget", "message": "At most 5 writes a minute"} if {
	input.tool.name == "write_file"
	not write_budget_passes
}

# write_budget_passes holds when every condition of write-budget holds.
write_budget_passes if {
	is_number(counter("write_file", "_rate_minute"))
	counter("write_file", "_rate_minute") <= 5
}

# METADATA
# title: write-budget
# description: "At most 5 writes a minute"
# custom:
#   source: policies/filesystem.yaml:48
#   tool: write_file
#   action: evaluate
rate_limits contains {"key": "write_file/_rate_minute", "limit": 5, "exclusive": false, "window": "minute", "cost": 1, "rule": "write-budget", "message": "At most 5 writes a minute"} if {
	input.tool.name == "write_file"
}

# METADATA
# title: no-dry-run-skipping
# description: "Edits must be previewed with dryRun: true"
# custom:
#   source: policies/filesystem.yaml:53
#   tool: edit_file
#   action: evaluate
deny contains {"order": 8, "rule": "no-dry-run-skipping", "message": "Edits must be previewed with dryRun: true"} if {
	input.tool.name == "edit_file"
	not no_dry_run_skipping_passes
}

# no_dry_run_skipping_passes holds when every condition of no-dry-run-skipping holds.
no_dry_run_skipping_passes if {
	input.tool.arguments.dryRun in {true, "true"}
}

# METADATA
# title: "allowed_call read_text_file"
# description: "The gate's decision for a call to read_text_file that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:10
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "read_text_file/_rate_minute", "limit": 120, "exclusive": false, "window": "minute", "cost": 1, "rule": "read-budget", "message": "Rate limit of 120 per minute reached. Try again later."}]} if {
	input.tool.name == "read_text_file"

	# read-budget
	is_number(counter("read_text_file", "_rate_minute"))
	counter("read_text_file", "_rate_minute") <= 120
}

# METADATA
# title: "allowed_call read_file"
# description: "The gate's decision for a call to read_file that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:14
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "read_file"
}

# METADATA
# title: "allowed_call read_multiple_files"
# description: "The gate's decision for a call to read_multiple_files that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:16
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "read_multiple_files"
}

# METADATA
# title: "allowed_call list_directory"
# description: "The gate's decision for a call to list_directory that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:18
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "list_directory"
}

# METADATA
# title: "allowed_call list_allowed_directories"
# description: "The gate's decision for a call to list_allowed_directories that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:20
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "list_allowed_directories"
}

# METADATA
# title: "allowed_call get_file_info"
# description: "The gate's decision for a call to get_file_info that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:22
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "get_file_info"
}

# METADATA
# title: "allowed_call search_files"
# description: "The gate's decision for a call to search_files that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:24
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "search_files"
}

# METADATA
# title: "allowed_call directory_tree"
# description: "The gate's decision for a call to directory_tree that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:26
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "directory_tree"
}

# METADATA
# title: "allowed_call create_directory"
# description: "The gate's decision for a call to create_directory that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:28
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "create_directory/_rate_minute", "limit": 10, "exclusive": false, "window": "minute", "cost": 1, "rule": "directory-budget", "message": "Rate limit of 10 per minute reached. Try again later."}]} if {
	input.tool.name == "create_directory"

	# directory-budget
	is_number(counter("create_directory", "_rate_minute"))
	counter("create_directory", "_rate_minute") <= 10
}

# METADATA
# title: "allowed_call write_file"
# description: "The gate's decision for a call to write_file that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:32
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "write_file/_rate_minute", "limit": 5, "exclusive": false, "window": "minute", "cost": 1, "rule": "write-budget", "message": "At most 5 writes a minute"}]} if {
	input.tool.name == "write_file"

	# write-text-files-only
	is_string(input.tool.arguments.path)
	regex.match(`\.(txt|md|json)$`, input.tool.arguments.path)

	# no-hidden-folders
	is_string(input.tool.arguments.path)
	regex.match(`^[^.]*(\.[^./][^/]*)?$`, input.tool.arguments.path)

	# write-needs-content
	input.tool.input_schema
	every name in object.get(input.tool, ["input_schema", "required"], []) {
		argument_present(input.tool.arguments, name)
	}

	# write-budget
	is_number(counter("write_file", "_rate_minute"))
	counter("write_file", "_rate_minute") <= 5
}

# METADATA
# title: "allowed_call edit_file"
# description: "The gate's decision for a call to edit_file that every rule lets through"
# custom:
#   source: policies/filesystem.yaml:52
allowed_call := {"allow": true, "reasons": [], "rate_limits": []} if {
	input.tool.name == "edit_file"

	# no-dry-run-skipping
	input.tool.arguments.dryRun in {true, "true"}
}

# argument_present holds when the argument is there and neither null nor an empty string.
argument_present(arguments, name) if {
	value := arguments[name]
	value != null
	value != ""
}

# counter is a counter's value in its current window, as the proxy reads it; one never written is 0.
counter(scope, name) := object.get(input.state, [scope, name], 0)
