"""What ``regogate serve``'s flags are checked against without the HTTP stack: loopback, JWT algorithms."""

from __future__ import annotations

import ipaddress

__all__ = ["ASYMMETRIC_ALGORITHMS", "DEFAULT_ALGORITHMS", "is_loopback"]

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""What ``--algorithms`` may name: public-key signatures only (a JWKS publishes public keys)."""
DEFAULT_ALGORITHMS = ("RS256", "ES256")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
