"""regogate.testing: integration-test MCP policies with pytest, a real OPA and real MCP servers.

Installed with ``pip install 'regogate[testing]'``; pytest loads the plugin (fixtures
``regogate_opa``, ``regogate_redis``, ``regogate_session``) by itself. See docs/testing.md.
Loading the plugin imports neither the MCP SDK nor testcontainers: they load when a fixture or
``GatedSession`` is first used.
"""

from typing import TYPE_CHECKING, Any

from regogate.testing._assertions import assert_allowed, assert_denied, audit_entries, decision_of
from regogate.testing._containers import ContainerUnavailable, OpaContainer, RedisContainer
from regogate.testing._plugin import OpaFactory, SessionFactory

if TYPE_CHECKING:
    from regogate.testing._session import GatedSession

__all__ = [
    "ContainerUnavailable",
    "GatedSession",
    "OpaContainer",
    "OpaFactory",
    "RedisContainer",
    "SessionFactory",
    "assert_allowed",
    "assert_denied",
    "audit_entries",
    "decision_of",
]


def __getattr__(name: str) -> Any:
    if name == "GatedSession":  # the SDK client class, imported on first use
        from regogate.testing._session import GatedSession

        return GatedSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
