"""The policy side: the gateway that asks OPA, the decision contract, the OPA client and its HTTP layer,
embedded OPA, revisions and audit."""

from regogate.proxy.policy._audit import AuditLog, argument_hash
from regogate.proxy.policy._decision import CallInput, Decision, ListInput, RateLimitDeclaration, parse_decision
from regogate.proxy.policy._embedded_opa import EmbeddedOpa, find_opa
from regogate.proxy.policy._http import HttpTransport, OpaTransport
from regogate.proxy.policy._opa_client import DEFAULT_TIMEOUT, OpaClient
from regogate.proxy.policy._policy_gateway import (
    DEFAULT_DECISION_PATH,
    CounterRead,
    FailMode,
    GateSettings,
    PolicyGateway,
)
from regogate.proxy.policy._revisions import RevisionAudit, RevisionTracker, wait_for_bundles

__all__ = [
    "DEFAULT_DECISION_PATH",
    "DEFAULT_TIMEOUT",
    "AuditLog",
    "CallInput",
    "CounterRead",
    "Decision",
    "EmbeddedOpa",
    "FailMode",
    "GateSettings",
    "HttpTransport",
    "ListInput",
    "OpaClient",
    "OpaTransport",
    "PolicyGateway",
    "RateLimitDeclaration",
    "RevisionAudit",
    "RevisionTracker",
    "argument_hash",
    "find_opa",
    "parse_decision",
    "wait_for_bundles",
]
