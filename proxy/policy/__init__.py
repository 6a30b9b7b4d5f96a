"""The policy side: the gateway that asks OPA, the decision contract, the OPA client and its HTTP layer,
embedded OPA, revisions and audit."""

from regogate.proxy.policy._approvals import ApprovalDesk
from regogate.proxy.policy._arg_hash import ArgumentHasher, default_key_path, load_key
from regogate.proxy.policy._audit import AuditLog
from regogate.proxy.policy._decision import CallInput, Decision, ListInput, RateLimitDeclaration, parse_decision
from regogate.proxy.policy._embedded_opa import EmbeddedOpa, find_opa
from regogate.proxy.policy._http import HttpTransport, OpaTransport
from regogate.proxy.policy._offered_tools import OfferedToolsCheck, unknown_tools
from regogate.proxy.policy._opa_client import DEFAULT_TIMEOUT, OpaClient
from regogate.proxy.policy._opa_install import MIN_OPA_VERSION, OPA_VERSION, how_to_get_opa, parse_opa_version
from regogate.proxy.policy._opa_supervisor import supervise_opa
from regogate.proxy.policy._policy_gateway import (
    DEFAULT_DECISION_PATH,
    CounterRead,
    FailMode,
    GateSettings,
    PolicyGateway,
    counter_reads,
)
from regogate.proxy.policy._probe import check_probe_result, probe_decision, probe_input
from regogate.proxy.policy._revisions import RevisionTracker, wait_for_bundles
from regogate.proxy.policy._rotating import RotatingFile

__all__ = [
    "DEFAULT_DECISION_PATH",
    "DEFAULT_TIMEOUT",
    "MIN_OPA_VERSION",
    "OPA_VERSION",
    "ApprovalDesk",
    "ArgumentHasher",
    "AuditLog",
    "CallInput",
    "CounterRead",
    "Decision",
    "EmbeddedOpa",
    "FailMode",
    "GateSettings",
    "HttpTransport",
    "ListInput",
    "OfferedToolsCheck",
    "OpaClient",
    "OpaTransport",
    "PolicyGateway",
    "RateLimitDeclaration",
    "RevisionTracker",
    "RotatingFile",
    "check_probe_result",
    "counter_reads",
    "default_key_path",
    "find_opa",
    "how_to_get_opa",
    "load_key",
    "parse_decision",
    "parse_opa_version",
    "probe_decision",
    "probe_input",
    "supervise_opa",
    "unknown_tools",
    "wait_for_bundles",
]
