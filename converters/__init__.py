"""regogate's converters: Intercept-style YAML policies validated and turned into OPA bundles."""

from regogate.converters._bundle import Bundle, convert, gate_bundle, policy_bundle, sign_bundle, write_bundle
from regogate.converters._load import default_server_id, load_policy, parse_policy
from regogate.converters._mask import generate_mask, generate_mask_tests, mask_bundle
from regogate.converters._model import Condition, Counter, Policy, RateLimit, Rule, Tool
from regogate.converters._rego import generate_rego
from regogate.converters._testgen import generate_tests
from regogate.core import LOG_ARGS, LogArgs

__all__ = [
    "LOG_ARGS",
    "Bundle",
    "Condition",
    "Counter",
    "LogArgs",
    "Policy",
    "RateLimit",
    "Rule",
    "Tool",
    "convert",
    "default_server_id",
    "gate_bundle",
    "generate_mask",
    "generate_mask_tests",
    "generate_rego",
    "generate_tests",
    "load_policy",
    "mask_bundle",
    "parse_policy",
    "policy_bundle",
    "sign_bundle",
    "write_bundle",
]
