"""What the relay learns from the traffic it carries: the handshake, each call's protocol version, call shape."""

from __future__ import annotations

from dataclasses import dataclass, field

from regogate.proxy.relay._wire import PROTOCOL_VERSION_META_KEY, is_modern


@dataclass
class Session:
    """The handshake as seen passing through: negotiated version, client info, whether it completed."""

    negotiated_version: str | None = None
    client_info: dict[str, object] = field(default_factory=dict)
    initialize_answered: bool = False
    initialized_sent: bool = False
    form_elicitation: bool = False
    """The client declared the ``elicitation`` capability with form mode (an empty object means form)."""

    @property
    def handshake_done(self) -> bool:
        return self.initialize_answered and self.initialized_sent

    def initialize_sent(self, message: dict[str, object]) -> None:
        """The client's ``initialize`` went up: remember who it says it is."""
        params = message.get("params")
        info = params.get("clientInfo") if isinstance(params, dict) else None
        self.client_info = info if isinstance(info, dict) else {}
        capabilities = params.get("capabilities") if isinstance(params, dict) else None
        elicitation = capabilities.get("elicitation") if isinstance(capabilities, dict) else None
        self.form_elicitation = isinstance(elicitation, dict) and (
            "form" in elicitation or not ({"form", "url"} & elicitation.keys())
        )

    def can_elicit(self, version: object) -> bool:
        """Whether regogate may send this call's client an ``elicitation/create`` request.

        Not in the 2026-07-28 era, which has no server-to-client requests on stdio (its input-required
        results are not used yet): there, approvals go out of band.
        """
        return self.form_elicitation and not is_modern(version)

    def initialize_answer(self, message: dict[str, object]) -> None:
        """The server answered ``initialize``: remember the negotiated version."""
        result = message.get("result")
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
            self.negotiated_version = result["protocolVersion"]
            self.initialize_answered = True

    def version(self, message: dict[str, object]) -> object:
        """The request's own protocol version (2026-07-28 era), else the negotiated one."""
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta:
            return meta[PROTOCOL_VERSION_META_KEY]
        return self.negotiated_version


def call_problem(message: dict[str, object]) -> str | None:
    """Why a ``tools/call`` cannot be judged (and so is denied), or ``None``."""
    params = message.get("params")
    if not isinstance(params, dict):
        return "invalid tools/call: params must be an object"
    name = params.get("name")
    if not isinstance(name, str) or not name:
        return "invalid tools/call: no tool name"
    if not isinstance(params.get("arguments", {}), dict | None):
        return "invalid tools/call: arguments must be an object"
    if "_meta" in params and not isinstance(params["_meta"], dict):
        return "invalid tools/call: _meta must be an object"
    return None
