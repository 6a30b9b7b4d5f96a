# METADATA
# title: python
# description: "Converted by regogate from policies/python.yaml; convert again, do not edit."
# custom:
#   source: policies/python.yaml
#   server_id: python
#   default: deny
package regogate.policies.python

# Tools listed under `tools`.
listed_tools := {"black", "conda", "mypy", "pip-audit", "pip-install", "pip-list", "pip-show", "poetry", "pyenv", "pytest", "ruff-check", "ruff-format", "uv-install", "uv-run"}

# Tools named under `hide`.
hidden_tools := set()

hides_all := false

# METADATA
# title: default
# description: "Tool \"<name>\" is not permitted by policy"
# custom:
#   source: policies/python.yaml:15
deny contains {"order": 1, "rule": "default", "message": sprintf("Tool %q is not permitted by policy", [input.tool.name])} if {
	not input.tool.name in listed_tools
}

# METADATA
# title: conda[0]
# description: "Destructive operation blocked by policy"
# custom:
#   source: policies/python.yaml:19
#   tool: conda
#   action: deny
deny contains {"order": 2, "rule": "conda[0]", "message": "Destructive operation blocked by policy"} if {
	input.tool.name == "conda"
}

# METADATA
# title: poetry[0]
# description: "Destructive operation blocked by policy"
# custom:
#   source: policies/python.yaml:23
#   tool: poetry
#   action: deny
deny contains {"order": 3, "rule": "poetry[0]", "message": "Destructive operation blocked by policy"} if {
	input.tool.name == "poetry"
}

# METADATA
# title: uv-run[0]
# description: "Rate limit of 10 per hour reached. Try again later."
# custom:
#   source: policies/python.yaml:27
#   tool: uv-run
#   action: allow
deny contains {"order": 4, "rule": "uv-run[0]", "message": "Rate limit of 10 per hour reached. Try again later."} if {
	input.tool.name == "uv-run"
	not uv_run_0_passes
}

# uv_run_0_passes holds when every condition of uv-run[0] holds.
uv_run_0_passes if {
	is_number(counter("uv-run", "_rate_hour"))
	counter("uv-run", "_rate_hour") <= 10
}

# METADATA
# title: uv-run[0]
# description: "cannot check the arguments: the input schema of this tool is unknown"
# custom:
#   source: policies/python.yaml:27
#   tool: uv-run
#   action: allow
deny contains {"order": 4, "rule": "uv-run[0]", "message": "cannot check the arguments: the input schema of this tool is unknown"} if {
	input.tool.name == "uv-run"
	not input.tool.input_schema
}

# METADATA
# title: uv-run[0]
# description: "missing required argument <name>"
# custom:
#   source: policies/python.yaml:27
#   tool: uv-run
#   action: allow
deny contains {"order": 4, "rule": "uv-run[0]", "message": sprintf("missing required argument %q", [name])} if {
	input.tool.name == "uv-run"
	some name in input.tool.input_schema.required
	not argument_present(input.tool.arguments, name)
}

# METADATA
# title: uv-run[0]
# description: "Rate limit of 10 per hour reached. Try again later."
# custom:
#   source: policies/python.yaml:27
#   tool: uv-run
#   action: allow
rate_limits contains {"key": "uv-run/_rate_hour", "limit": 10, "exclusive": false, "window": "hour", "cost": 1, "rule": "uv-run[0]", "message": "Rate limit of 10 per hour reached. Try again later."} if {
	input.tool.name == "uv-run"
}

# METADATA
# title: black[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:33
#   tool: black
#   action: allow
deny contains {"order": 5, "rule": "black[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "black"
	not black_0_passes
}

# black_0_passes holds when every condition of black[0] holds.
black_0_passes if {
	is_number(counter("black", "_rate_minute"))
	counter("black", "_rate_minute") <= 60
}

# METADATA
# title: black[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:33
#   tool: black
#   action: allow
rate_limits contains {"key": "black/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "black[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "black"
}

# METADATA
# title: mypy[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:37
#   tool: mypy
#   action: allow
deny contains {"order": 6, "rule": "mypy[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "mypy"
	not mypy_0_passes
}

# mypy_0_passes holds when every condition of mypy[0] holds.
mypy_0_passes if {
	is_number(counter("mypy", "_rate_minute"))
	counter("mypy", "_rate_minute") <= 60
}

# METADATA
# title: mypy[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:37
#   tool: mypy
#   action: allow
rate_limits contains {"key": "mypy/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "mypy[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "mypy"
}

# METADATA
# title: pip-audit[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:41
#   tool: pip-audit
#   action: allow
deny contains {"order": 7, "rule": "pip-audit[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pip-audit"
	not pip_audit_0_passes
}

# pip_audit_0_passes holds when every condition of pip-audit[0] holds.
pip_audit_0_passes if {
	is_number(counter("pip-audit", "_rate_minute"))
	counter("pip-audit", "_rate_minute") <= 60
}

# METADATA
# title: pip-audit[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:41
#   tool: pip-audit
#   action: allow
rate_limits contains {"key": "pip-audit/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pip-audit[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pip-audit"
}

# METADATA
# title: pip-list[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:45
#   tool: pip-list
#   action: allow
deny contains {"order": 8, "rule": "pip-list[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pip-list"
	not pip_list_0_passes
}

# pip_list_0_passes holds when every condition of pip-list[0] holds.
pip_list_0_passes if {
	is_number(counter("pip-list", "_rate_minute"))
	counter("pip-list", "_rate_minute") <= 60
}

# METADATA
# title: pip-list[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:45
#   tool: pip-list
#   action: allow
rate_limits contains {"key": "pip-list/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pip-list[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pip-list"
}

# METADATA
# title: pip-show[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:49
#   tool: pip-show
#   action: allow
deny contains {"order": 9, "rule": "pip-show[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pip-show"
	not pip_show_0_passes
}

# pip_show_0_passes holds when every condition of pip-show[0] holds.
pip_show_0_passes if {
	is_number(counter("pip-show", "_rate_minute"))
	counter("pip-show", "_rate_minute") <= 60
}

# METADATA
# title: pip-show[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:49
#   tool: pip-show
#   action: allow
rate_limits contains {"key": "pip-show/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pip-show[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pip-show"
}

# METADATA
# title: pyenv[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:53
#   tool: pyenv
#   action: allow
deny contains {"order": 10, "rule": "pyenv[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pyenv"
	not pyenv_0_passes
}

# pyenv_0_passes holds when every condition of pyenv[0] holds.
pyenv_0_passes if {
	is_number(counter("pyenv", "_rate_minute"))
	counter("pyenv", "_rate_minute") <= 60
}

# METADATA
# title: pyenv[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:53
#   tool: pyenv
#   action: allow
rate_limits contains {"key": "pyenv/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pyenv[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pyenv"
}

# METADATA
# title: pytest[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:57
#   tool: pytest
#   action: allow
deny contains {"order": 11, "rule": "pytest[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pytest"
	not pytest_0_passes
}

# pytest_0_passes holds when every condition of pytest[0] holds.
pytest_0_passes if {
	is_number(counter("pytest", "_rate_minute"))
	counter("pytest", "_rate_minute") <= 60
}

# METADATA
# title: pytest[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:57
#   tool: pytest
#   action: allow
rate_limits contains {"key": "pytest/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pytest[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "pytest"
}

# METADATA
# title: ruff-check[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:61
#   tool: ruff-check
#   action: allow
deny contains {"order": 12, "rule": "ruff-check[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "ruff-check"
	not ruff_check_0_passes
}

# ruff_check_0_passes holds when every condition of ruff-check[0] holds.
ruff_check_0_passes if {
	is_number(counter("ruff-check", "_rate_minute"))
	counter("ruff-check", "_rate_minute") <= 60
}

# METADATA
# title: ruff-check[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:61
#   tool: ruff-check
#   action: allow
rate_limits contains {"key": "ruff-check/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "ruff-check[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "ruff-check"
}

# METADATA
# title: ruff-format[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:65
#   tool: ruff-format
#   action: allow
deny contains {"order": 13, "rule": "ruff-format[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "ruff-format"
	not ruff_format_0_passes
}

# ruff_format_0_passes holds when every condition of ruff-format[0] holds.
ruff_format_0_passes if {
	is_number(counter("ruff-format", "_rate_minute"))
	counter("ruff-format", "_rate_minute") <= 60
}

# METADATA
# title: ruff-format[0]
# description: "Rate limit of 60 per minute reached. Try again later."
# custom:
#   source: policies/python.yaml:65
#   tool: ruff-format
#   action: allow
rate_limits contains {"key": "ruff-format/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "ruff-format[0]", "message": "Rate limit of 60 per minute reached. Try again later."} if {
	input.tool.name == "ruff-format"
}

# METADATA
# title: pip-install[0]
# description: "Rate limit of 30 per hour reached. Try again later."
# custom:
#   source: policies/python.yaml:69
#   tool: pip-install
#   action: allow
deny contains {"order": 14, "rule": "pip-install[0]", "message": "Rate limit of 30 per hour reached. Try again later."} if {
	input.tool.name == "pip-install"
	not pip_install_0_passes
}

# pip_install_0_passes holds when every condition of pip-install[0] holds.
pip_install_0_passes if {
	is_number(counter("pip-install", "_rate_hour"))
	counter("pip-install", "_rate_hour") <= 30
}

# METADATA
# title: pip-install[0]
# description: "Rate limit of 30 per hour reached. Try again later."
# custom:
#   source: policies/python.yaml:69
#   tool: pip-install
#   action: allow
rate_limits contains {"key": "pip-install/_rate_hour", "limit": 30, "exclusive": false, "window": "hour", "cost": 1, "rule": "pip-install[0]", "message": "Rate limit of 30 per hour reached. Try again later."} if {
	input.tool.name == "pip-install"
}

# METADATA
# title: uv-install[0]
# description: "Rate limit of 30 per hour reached. Try again later."
# custom:
#   source: policies/python.yaml:73
#   tool: uv-install
#   action: allow
deny contains {"order": 15, "rule": "uv-install[0]", "message": "Rate limit of 30 per hour reached. Try again later."} if {
	input.tool.name == "uv-install"
	not uv_install_0_passes
}

# uv_install_0_passes holds when every condition of uv-install[0] holds.
uv_install_0_passes if {
	is_number(counter("uv-install", "_rate_hour"))
	counter("uv-install", "_rate_hour") <= 30
}

# METADATA
# title: uv-install[0]
# description: "Rate limit of 30 per hour reached. Try again later."
# custom:
#   source: policies/python.yaml:73
#   tool: uv-install
#   action: allow
rate_limits contains {"key": "uv-install/_rate_hour", "limit": 30, "exclusive": false, "window": "hour", "cost": 1, "rule": "uv-install[0]", "message": "Rate limit of 30 per hour reached. Try again later."} if {
	input.tool.name == "uv-install"
}

# METADATA
# title: "allowed_call uv-run"
# description: "The gate's decision for a call to uv-run that every rule lets through"
# custom:
#   source: policies/python.yaml:26
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "uv-run/_rate_hour", "limit": 10, "exclusive": false, "window": "hour", "cost": 1, "rule": "uv-run[0]", "message": "Rate limit of 10 per hour reached. Try again later."}]} if {
	input.tool.name == "uv-run"

	# uv-run[0]
	is_number(counter("uv-run", "_rate_hour"))
	counter("uv-run", "_rate_hour") <= 10
	input.tool.input_schema
	every name in object.get(input.tool, ["input_schema", "required"], []) {
		argument_present(input.tool.arguments, name)
	}
}

# METADATA
# title: "allowed_call black"
# description: "The gate's decision for a call to black that every rule lets through"
# custom:
#   source: policies/python.yaml:32
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "black/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "black[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "black"

	# black[0]
	is_number(counter("black", "_rate_minute"))
	counter("black", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call mypy"
# description: "The gate's decision for a call to mypy that every rule lets through"
# custom:
#   source: policies/python.yaml:36
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "mypy/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "mypy[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "mypy"

	# mypy[0]
	is_number(counter("mypy", "_rate_minute"))
	counter("mypy", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call pip-audit"
# description: "The gate's decision for a call to pip-audit that every rule lets through"
# custom:
#   source: policies/python.yaml:40
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "pip-audit/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pip-audit[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "pip-audit"

	# pip-audit[0]
	is_number(counter("pip-audit", "_rate_minute"))
	counter("pip-audit", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call pip-list"
# description: "The gate's decision for a call to pip-list that every rule lets through"
# custom:
#   source: policies/python.yaml:44
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "pip-list/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pip-list[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "pip-list"

	# pip-list[0]
	is_number(counter("pip-list", "_rate_minute"))
	counter("pip-list", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call pip-show"
# description: "The gate's decision for a call to pip-show that every rule lets through"
# custom:
#   source: policies/python.yaml:48
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "pip-show/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pip-show[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "pip-show"

	# pip-show[0]
	is_number(counter("pip-show", "_rate_minute"))
	counter("pip-show", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call pyenv"
# description: "The gate's decision for a call to pyenv that every rule lets through"
# custom:
#   source: policies/python.yaml:52
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "pyenv/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pyenv[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "pyenv"

	# pyenv[0]
	is_number(counter("pyenv", "_rate_minute"))
	counter("pyenv", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call pytest"
# description: "The gate's decision for a call to pytest that every rule lets through"
# custom:
#   source: policies/python.yaml:56
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "pytest/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "pytest[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "pytest"

	# pytest[0]
	is_number(counter("pytest", "_rate_minute"))
	counter("pytest", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call ruff-check"
# description: "The gate's decision for a call to ruff-check that every rule lets through"
# custom:
#   source: policies/python.yaml:60
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "ruff-check/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "ruff-check[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "ruff-check"

	# ruff-check[0]
	is_number(counter("ruff-check", "_rate_minute"))
	counter("ruff-check", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call ruff-format"
# description: "The gate's decision for a call to ruff-format that every rule lets through"
# custom:
#   source: policies/python.yaml:64
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "ruff-format/_rate_minute", "limit": 60, "exclusive": false, "window": "minute", "cost": 1, "rule": "ruff-format[0]", "message": "Rate limit of 60 per minute reached. Try again later."}]} if {
	input.tool.name == "ruff-format"

	# ruff-format[0]
	is_number(counter("ruff-format", "_rate_minute"))
	counter("ruff-format", "_rate_minute") <= 60
}

# METADATA
# title: "allowed_call pip-install"
# description: "The gate's decision for a call to pip-install that every rule lets through"
# custom:
#   source: policies/python.yaml:68
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "pip-install/_rate_hour", "limit": 30, "exclusive": false, "window": "hour", "cost": 1, "rule": "pip-install[0]", "message": "Rate limit of 30 per hour reached. Try again later."}]} if {
	input.tool.name == "pip-install"

	# pip-install[0]
	is_number(counter("pip-install", "_rate_hour"))
	counter("pip-install", "_rate_hour") <= 30
}

# METADATA
# title: "allowed_call uv-install"
# description: "The gate's decision for a call to uv-install that every rule lets through"
# custom:
#   source: policies/python.yaml:72
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "uv-install/_rate_hour", "limit": 30, "exclusive": false, "window": "hour", "cost": 1, "rule": "uv-install[0]", "message": "Rate limit of 30 per hour reached. Try again later."}]} if {
	input.tool.name == "uv-install"

	# uv-install[0]
	is_number(counter("uv-install", "_rate_hour"))
	counter("uv-install", "_rate_hour") <= 30
}

# argument_present holds when the argument is there and neither null nor an empty string.
argument_present(arguments, name) if {
	value := arguments[name]
	value != null
	value != ""
}

# counter is a counter's value in its current window, as the proxy reads it; one never written is 0.
counter(scope, name) := object.get(input.state, [scope, name], 0)
