"""Launch the relay for end-to-end tests, with a small in-process gateway chosen by environment.

``REGOGATE_TEST_GATEWAY`` is a comma-separated list of ``deny:<tool>`` and ``hide:<tool>``
entries (empty: allow everything); ``noisy`` makes every decision write junk to ``sys.stdout``. Each settle is logged to stderr as
``settled <decision_id> succeeded=<bool>`` so tests can wait on it.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import anyio

from regogate.proxy.relay._gateway import CallContext, Verdict
from regogate.proxy.transports._stdio import run_relay

logger = logging.getLogger("relay_main")


@dataclass
class ListGateway:
    """Denies and hides tools by name; records what it saw."""

    deny: set[str] = field(default_factory=set)
    hide: set[str] = field(default_factory=set)
    noisy: bool = False
    calls: list[CallContext] = field(default_factory=list)
    settled: list[tuple[Verdict, bool]] = field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: str) -> ListGateway:
        gateway = cls()
        for item in filter(None, spec.split(",")):
            kind, _, name = item.partition(":")
            if kind == "noisy":
                gateway.noisy = True
            else:
                (gateway.deny if kind == "deny" else gateway.hide).add(name)
        return gateway

    async def check_call(self, call: CallContext) -> Verdict:
        self.calls.append(call)
        if self.noisy:  # a careless library; must not reach the wire
            sys.stdout.write("stray output\n")
            sys.stdout.flush()
        decision_id = f"d{len(self.calls)}"
        if call.tool_name in self.deny:
            return Verdict(False, f"tool {call.tool_name} is not allowed", "deny_by_name", decision_id)
        return Verdict(True, "", None, decision_id, ticket=decision_id)

    async def settle(self, verdict: Verdict, *, succeeded: bool) -> None:
        self.settled.append((verdict, succeeded))
        logger.info("settled %s succeeded=%s", verdict.decision_id, succeeded)

    async def hidden_tools(self, tools: list[dict[str, object]], *, last_page: bool = True) -> set[str]:
        return {str(t["name"]) for t in tools} & self.hide


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(message)s")
    gateway = ListGateway.from_spec(os.environ.get("REGOGATE_TEST_GATEWAY", ""))
    return anyio.run(run_relay, sys.argv[1:], gateway)


if __name__ == "__main__":
    sys.exit(main())
