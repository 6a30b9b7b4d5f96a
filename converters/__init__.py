"""regogate's converters: Intercept-style YAML policies validated and turned into OPA bundles."""

from regogate.converters._bundle import Bundle, convert, gate_bundle, policy_bundle, write_bundle
from regogate.converters._load import default_server_id, load_policy, parse_policy
from regogate.converters._model import Condition, Counter, Policy, RateLimit, Rule, Tool
from regogate.converters._rego import generate_rego
from regogate.converters._testgen import generate_tests

__all__ = [
    "Bundle",
    "Condition",
    "Counter",
    "Policy",
    "RateLimit",
    "Rule",
    "Tool",
    "convert",
    "default_server_id",
    "gate_bundle",
    "generate_rego",
    "generate_tests",
    "load_policy",
    "parse_policy",
    "policy_bundle",
    "write_bundle",
]
