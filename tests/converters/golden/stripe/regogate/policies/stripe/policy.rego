# METADATA
# title: "Stripe MCP server policy"
# description: "Converted by regogate from policies/stripe.yaml; convert again, do not edit."
# custom:
#   source: policies/stripe.yaml
#   server_id: stripe
#   default: allow
package regogate.policies.stripe

# Tools listed under `tools`.
listed_tools := {"create_charge", "create_payout", "create_refund", "delete_customer", "update_customer"}

# Tools named under `hide`.
hidden_tools := set()

hides_all := false

# METADATA
# title: charge-currency
# description: "Only USD, EUR and GBP charges are allowed"
# custom:
#   source: policies/stripe.yaml:9
#   tool: create_charge
#   action: evaluate
deny contains {"order": 2, "rule": "charge-currency", "message": "Only USD, EUR and GBP charges are allowed"} if {
	input.tool.name == "create_charge"
	not charge_currency_passes
}

# charge_currency_passes holds when every condition of charge-currency holds.
charge_currency_passes if {
	input.tool.arguments.currency in {"usd", "eur", "gbp"}
}

# METADATA
# title: charge-amount-cap
# description: "Charges must be between 0.01 and 500.00"
# custom:
#   source: policies/stripe.yaml:15
#   tool: create_charge
#   action: evaluate
deny contains {"order": 3, "rule": "charge-amount-cap", "message": "Charges must be between 0.01 and 500.00"} if {
	input.tool.name == "create_charge"
	not charge_amount_cap_passes
}

# charge_amount_cap_passes holds when every condition of charge-amount-cap holds.
charge_amount_cap_passes if {
	is_number(input.tool.arguments.amount)
	input.tool.arguments.amount <= 50000
	is_number(input.tool.arguments.amount)
	input.tool.arguments.amount > 0
}

# METADATA
# title: daily-charge-volume
# description: "Daily charge volume of 10,000.00 reached"
# custom:
#   source: policies/stripe.yaml:24
#   tool: create_charge
#   action: evaluate
deny contains {"order": 4, "rule": "daily-charge-volume", "message": "Daily charge volume of 10,000.00 reached"} if {
	input.tool.name == "create_charge"
	not daily_charge_volume_passes
}

# daily_charge_volume_passes holds when every condition of daily-charge-volume holds.
daily_charge_volume_passes if {
	is_number(counter("create_charge", "daily_volume"))
	counter("create_charge", "daily_volume") <= 1000000
}

# METADATA
# title: daily-charge-volume
# description: "Internal policy error: args.amount must be a number of at least 0; it is what a call adds to counter \"daily_volume\" of rule \"daily-charge-volume\""
# custom:
#   source: policies/stripe.yaml:24
#   tool: create_charge
#   action: evaluate
deny contains {"order": 1000004, "rule": "daily-charge-volume", "message": "Internal policy error: args.amount must be a number of at least 0; it is what a call adds to counter \"daily_volume\" of rule \"daily-charge-volume\""} if {
	input.tool.name == "create_charge"
	not daily_charge_volume_amount_known
}

# daily_charge_volume_amount_known holds when args.amount is a number Intercept can count (a fraction counts its whole part).
daily_charge_volume_amount_known if {
	is_number(input.tool.arguments.amount)
	input.tool.arguments.amount > -1
	input.tool.arguments.amount < 9223372036854775807
}

# METADATA
# title: daily-charge-volume
# description: "Daily charge volume of 10,000.00 reached"
# custom:
#   source: policies/stripe.yaml:24
#   tool: create_charge
#   action: evaluate
rate_limits contains {"key": "create_charge/daily_volume", "limit": 1000000, "exclusive": false, "window": "day", "cost": floor(abs(input.tool.arguments.amount)), "rule": "daily-charge-volume", "message": "Daily charge volume of 10,000.00 reached"} if {
	input.tool.name == "create_charge"
	daily_charge_volume_amount_known
}

# METADATA
# title: refund-count
# description: "At most 10 refunds a day"
# custom:
#   source: policies/stripe.yaml:36
#   tool: create_refund
#   action: evaluate
deny contains {"order": 5, "rule": "refund-count", "message": "At most 10 refunds a day"} if {
	input.tool.name == "create_refund"
	not refund_count_passes
}

# refund_count_passes holds when every condition of refund-count holds.
refund_count_passes if {
	is_number(counter("create_refund", "refunds_today"))
	counter("create_refund", "refunds_today") < 11
}

# METADATA
# title: refund-count
# description: "At most 10 refunds a day"
# custom:
#   source: policies/stripe.yaml:36
#   tool: create_refund
#   action: evaluate
rate_limits contains {"key": "create_refund/refunds_today", "limit": 11, "exclusive": true, "window": "day", "cost": 1, "rule": "refund-count", "message": "At most 10 refunds a day"} if {
	input.tool.name == "create_refund"
}

# METADATA
# title: refund-reason-given
# description: "Denied by rule \"refund-reason-given\""
# custom:
#   source: policies/stripe.yaml:45
#   tool: create_refund
#   action: evaluate
deny contains {"order": 6, "rule": "refund-reason-given", "message": "Denied by rule \"refund-reason-given\""} if {
	input.tool.name == "create_refund"
	not refund_reason_given_passes
}

# refund_reason_given_passes holds when every condition of refund-reason-given holds.
refund_reason_given_passes if {
	input.tool.arguments.metadata.reason != null
	object.get(input.tool.arguments, ["metadata", "internal_note"], null) == null
}

# METADATA
# title: refund-after-charges
# description: "Refunds need a charge today"
# custom:
#   source: policies/stripe.yaml:53
#   tool: create_refund
#   action: evaluate
deny contains {"order": 7, "rule": "refund-after-charges", "message": "Refunds need a charge today"} if {
	input.tool.name == "create_refund"
	not refund_after_charges_passes
}

# refund_after_charges_passes holds when every condition of refund-after-charges holds.
refund_after_charges_passes if {
	is_number(counter("create_charge", "daily_volume"))
	counter("create_charge", "daily_volume") >= 1
}

# METADATA
# title: customer-email-domain
# description: "Denied by rule \"customer-email-domain\""
# custom:
#   source: policies/stripe.yaml:61
#   tool: update_customer
#   action: evaluate
deny contains {"order": 8, "rule": "customer-email-domain", "message": "Denied by rule \"customer-email-domain\""} if {
	input.tool.name == "update_customer"
	not customer_email_domain_passes
}

# customer_email_domain_passes holds when every condition of customer-email-domain holds.
customer_email_domain_passes if {
	is_string(input.tool.arguments.email)
	regex.match(`@example\.(com|org)$`, input.tool.arguments.email)
}

# METADATA
# title: customer-not-vip
# description: "Denied by rule \"customer-not-vip\""
# custom:
#   source: policies/stripe.yaml:66
#   tool: update_customer
#   action: evaluate
deny contains {"order": 9, "rule": "customer-not-vip", "message": "Denied by rule \"customer-not-vip\""} if {
	input.tool.name == "update_customer"
	not customer_not_vip_passes
}

# customer_not_vip_passes holds when every condition of customer-not-vip holds.
customer_not_vip_passes if {
	tier_value := input.tool.arguments.tier
	tier_value != "vip"
}

# METADATA
# title: customer-age
# description: "Denied by rule \"customer-age\""
# custom:
#   source: policies/stripe.yaml:71
#   tool: update_customer
#   action: evaluate
deny contains {"order": 10, "rule": "customer-age", "message": "Denied by rule \"customer-age\""} if {
	input.tool.name == "update_customer"
	not customer_age_passes
}

# customer_age_passes holds when every condition of customer-age holds.
customer_age_passes if {
	is_number(input.tool.arguments.age)
	input.tool.arguments.age >= 18
	is_number(input.tool.arguments.age)
	input.tool.arguments.age < 130
}

# METADATA
# title: customer-tags
# description: "Denied by rule \"customer-tags\""
# custom:
#   source: policies/stripe.yaml:79
#   tool: update_customer
#   action: evaluate
deny contains {"order": 11, "rule": "customer-tags", "message": "Denied by rule \"customer-tags\""} if {
	input.tool.name == "update_customer"
	not customer_tags_passes
}

# customer_tags_passes holds when every condition of customer-tags holds.
customer_tags_passes if {
	contains_like(input.tool.arguments.tags, 7, {7, "7"}, set())
	contains_value(input.tool.arguments.note, "ok")
}

# METADATA
# title: deleting-needs-approval
# description: "requires a person's approval"
# custom:
#   source: policies/stripe.yaml:89
#   tool: delete_customer
#   action: require_approval
approvals contains {"order": 12, "rule": "deleting-needs-approval", "message": sprintf("Tool %q requires a person's approval", [input.tool.name]), "timeout": 300} if {
	input.tool.name == "delete_customer"
}

# METADATA
# title: create_payout[0]
# description: "Denied by rule \"create_payout[0]\""
# custom:
#   source: policies/stripe.yaml:94
#   tool: create_payout
#   action: deny
deny contains {"order": 13, "rule": "create_payout[0]", "message": "Denied by rule \"create_payout[0]\""} if {
	input.tool.name == "create_payout"
}

# METADATA
# title: schema-check
# description: "cannot check the arguments: the input schema of this tool is unknown"
# custom:
#   source: policies/stripe.yaml:97
#   tool: "*"
#   action: evaluate
deny contains {"order": 14, "rule": "schema-check", "message": "cannot check the arguments: the input schema of this tool is unknown"} if {
	not input.tool.input_schema
}

# METADATA
# title: schema-check
# description: "argument <field> is invalid: <why>"
# custom:
#   source: policies/stripe.yaml:97
#   tool: "*"
#   action: evaluate
deny contains {"order": 14, "rule": "schema-check", "message": sprintf("argument %s is invalid: %s", [problem.field, problem.desc])} if {
	[matches, problems] := json.match_schema(input.tool.arguments, input.tool.input_schema)
	not matches
	some problem in problems
}

# METADATA
# title: hourly-spend-guard
# description: "Stripe calls are limited to 1000 an hour"
# custom:
#   source: policies/stripe.yaml:100
#   tool: "*"
#   action: evaluate
deny contains {"order": 15, "rule": "hourly-spend-guard", "message": "Stripe calls are limited to 1000 an hour"} if {
	not hourly_spend_guard_passes
}

# hourly_spend_guard_passes holds when every condition of hourly-spend-guard holds.
hourly_spend_guard_passes if {
	is_number(counter("_global", "calls"))
	counter("_global", "calls") <= 1000
}

# METADATA
# title: hourly-spend-guard
# description: "Stripe calls are limited to 1000 an hour"
# custom:
#   source: policies/stripe.yaml:100
#   tool: "*"
#   action: evaluate
rate_limits contains {"key": "_global/calls", "limit": 1000, "exclusive": false, "window": "hour", "cost": 1, "rule": "hourly-spend-guard", "message": "Stripe calls are limited to 1000 an hour"}

# METADATA
# title: "allowed_call create_charge"
# description: "The gate's decision for a call to create_charge that every rule lets through"
# custom:
#   source: policies/stripe.yaml:8
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/calls", "limit": 1000, "exclusive": false, "window": "hour", "cost": 1, "rule": "hourly-spend-guard", "message": "Stripe calls are limited to 1000 an hour"}, {"key": "create_charge/daily_volume", "limit": 1000000, "exclusive": false, "window": "day", "cost": floor(abs(input.tool.arguments.amount)), "rule": "daily-charge-volume", "message": "Daily charge volume of 10,000.00 reached"}]} if {
	input.tool.name == "create_charge"

	# charge-currency
	input.tool.arguments.currency in {"usd", "eur", "gbp"}

	# charge-amount-cap
	is_number(input.tool.arguments.amount)
	input.tool.arguments.amount <= 50000
	is_number(input.tool.arguments.amount)
	input.tool.arguments.amount > 0

	# daily-charge-volume
	is_number(counter("create_charge", "daily_volume"))
	counter("create_charge", "daily_volume") <= 1000000
	is_number(input.tool.arguments.amount)
	input.tool.arguments.amount > -1
	input.tool.arguments.amount < 9223372036854775807

	# schema-check
	input.tool.input_schema
	[schema_valid, _] := json.match_schema(input.tool.arguments, input.tool.input_schema)
	schema_valid

	# hourly-spend-guard
	is_number(counter("_global", "calls"))
	counter("_global", "calls") <= 1000
}

# METADATA
# title: "allowed_call create_refund"
# description: "The gate's decision for a call to create_refund that every rule lets through"
# custom:
#   source: policies/stripe.yaml:35
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/calls", "limit": 1000, "exclusive": false, "window": "hour", "cost": 1, "rule": "hourly-spend-guard", "message": "Stripe calls are limited to 1000 an hour"}, {"key": "create_refund/refunds_today", "limit": 11, "exclusive": true, "window": "day", "cost": 1, "rule": "refund-count", "message": "At most 10 refunds a day"}]} if {
	input.tool.name == "create_refund"

	# refund-count
	is_number(counter("create_refund", "refunds_today"))
	counter("create_refund", "refunds_today") < 11

	# refund-reason-given
	input.tool.arguments.metadata.reason != null
	object.get(input.tool.arguments, ["metadata", "internal_note"], null) == null

	# refund-after-charges
	is_number(counter("create_charge", "daily_volume"))
	counter("create_charge", "daily_volume") >= 1

	# schema-check
	input.tool.input_schema
	[schema_valid, _] := json.match_schema(input.tool.arguments, input.tool.input_schema)
	schema_valid

	# hourly-spend-guard
	is_number(counter("_global", "calls"))
	counter("_global", "calls") <= 1000
}

# METADATA
# title: "allowed_call update_customer"
# description: "The gate's decision for a call to update_customer that every rule lets through"
# custom:
#   source: policies/stripe.yaml:60
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/calls", "limit": 1000, "exclusive": false, "window": "hour", "cost": 1, "rule": "hourly-spend-guard", "message": "Stripe calls are limited to 1000 an hour"}]} if {
	input.tool.name == "update_customer"

	# customer-email-domain
	is_string(input.tool.arguments.email)
	regex.match(`@example\.(com|org)$`, input.tool.arguments.email)

	# customer-not-vip
	tier_value := input.tool.arguments.tier
	tier_value != "vip"

	# customer-age
	is_number(input.tool.arguments.age)
	input.tool.arguments.age >= 18
	is_number(input.tool.arguments.age)
	input.tool.arguments.age < 130

	# customer-tags
	contains_like(input.tool.arguments.tags, 7, {7, "7"}, set())
	contains_value(input.tool.arguments.note, "ok")

	# schema-check
	input.tool.input_schema
	[schema_valid, _] := json.match_schema(input.tool.arguments, input.tool.input_schema)
	schema_valid

	# hourly-spend-guard
	is_number(counter("_global", "calls"))
	counter("_global", "calls") <= 1000
}

# METADATA
# title: allowed_call
# description: "The gate's decision for an unlisted tool that every rule lets through"
# custom:
#   source: policies/stripe.yaml:5
allowed_call := {"allow": true, "reasons": [], "rate_limits": [{"key": "_global/calls", "limit": 1000, "exclusive": false, "window": "hour", "cost": 1, "rule": "hourly-spend-guard", "message": "Stripe calls are limited to 1000 an hour"}]} if {
	not input.tool.name in listed_tools

	# schema-check
	input.tool.input_schema
	[schema_valid, _] := json.match_schema(input.tool.arguments, input.tool.input_schema)
	schema_valid

	# hourly-spend-guard
	is_number(counter("_global", "calls"))
	counter("_global", "calls") <= 1000
}

# contains_like holds when needle is a substring of a string haystack, or when a member of a list
# haystack equals needle as Intercept's eq does (one of the alternatives, or printed as one of the texts).
contains_like(haystack, needle, _, _) if {
	is_string(haystack)
	is_string(needle)
	contains(haystack, needle)
}

contains_like(haystack, _, alternatives, texts) if {
	is_array(haystack)
	some item in haystack
	one_of(item, alternatives, texts)
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

# go_printed is a list or map of scalars as Go's %v prints it: [a b], map[k:v] (keys sorted).
go_printed(value) := sprintf("[%s]", [concat(" ", [go_scalar(item) | some item in value])]) if {
	is_array(value)
	every item in value {
		go_scalar(item)
	}
}

go_printed(value) := sprintf("map[%s]", [concat(" ", pairs)]) if {
	is_object(value)
	pairs := [sprintf("%s:%s", [key, go_scalar(value[key])]) | some key in sort(object.keys(value))]
	count(pairs) == count(value)
}

# go_scalar is a string, number, boolean or null as Go's %v prints it (a JSON number is a float64).
go_scalar(value) := value if is_string(value)

go_scalar(value) := sprintf("%v", [value]) if is_boolean(value)

go_scalar(value) := "<nil>" if is_null(value)

go_scalar(value) := sprintf("%v", [value]) if {
	is_number(value)
	value != floor(value)
}

go_scalar(value) := format_int(value, 10) if {
	is_number(value)
	value == floor(value)
	abs(value) < 1000000
}

# From 1e6 on, Go prints a whole float64 in exponent form: 1.5e+06.
go_scalar(value) := sprintf("%s%se+%02d", [go_sign(value), go_mantissa(trim_right(whole, "0")), count(whole) - 1]) if {
	is_number(value)
	value == floor(value)
	abs(value) >= 1000000
	whole := format_int(abs(value), 10)
}

go_sign(value) := "-" if value < 0

go_sign(value) := "" if value >= 0

go_mantissa(digits) := digits if count(digits) == 1

go_mantissa(digits) := concat(".", [substring(digits, 0, 1), substring(digits, 1, -1)]) if count(digits) > 1

# one_of holds when value is one of the alternatives, or is a list or map that Go's %v prints as one
# of the texts (Intercept compares anything but two numbers by that text).
one_of(value, alternatives, _) if value in alternatives

one_of(value, _, texts) if go_printed(value) in texts
