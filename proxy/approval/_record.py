"""One approval as every store keeps it: what was asked, for which exact call, and what a person answered."""

from __future__ import annotations

import hashlib
import json
import secrets
from base64 import b32encode
from dataclasses import dataclass, replace
from typing import Final, Literal

__all__ = [
    "PREVIEW_BYTES",
    "Approval",
    "ApprovalStatus",
    "arguments_digest",
    "arguments_preview",
    "new_approval_id",
]

ApprovalStatus = Literal["pending", "approved", "denied", "used", "expired"]

#: How much of a call's arguments an approval keeps for the person to read; the full size is stated.
PREVIEW_BYTES: Final = 4096


def new_approval_id() -> str:
    """An unguessable id a person can type: ``apr-`` and 16 base32 letters (80 random bits)."""
    return "apr-" + b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def _canonical(arguments: object) -> bytes:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def arguments_digest(arguments: object) -> str:
    """The SHA-256 of the arguments' canonical JSON: an approval admits only the call it was given for."""
    return "sha256:" + hashlib.sha256(_canonical(arguments)).hexdigest()


def arguments_preview(arguments: object) -> tuple[str, int]:
    """The arguments pretty-printed and cut to ``PREVIEW_BYTES``, and the size of their canonical JSON."""
    size = len(_canonical(arguments))
    pretty = json.dumps(arguments, sort_keys=True, indent=2, ensure_ascii=False)
    encoded = pretty.encode("utf-8")
    if len(encoded) > PREVIEW_BYTES:
        pretty = encoded[:PREVIEW_BYTES].decode("utf-8", errors="ignore") + f"\n… (truncated; {size} bytes in all)"
    return pretty, size


@dataclass(frozen=True, slots=True)
class Approval:
    """A request for a person's approval of one call, and its answer.

    ``expires`` is when a pending request lapses, or, once approved, the end of the window in which
    the same call (server, tool, arguments digest) is admitted once.
    """

    id: str
    server_id: str
    tool: str
    digest: str
    preview: str
    size: int
    rule: str
    message: str
    created: float
    expires: float
    timeout: float
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str | None = None
    via: str | None = None
    asked_by: str | None = None
    """The caller's principal id when the call was made (``None`` in records from before it was kept)."""
    client: str | None = None
    """The MCP client's ``clientInfo.name``, if it gave one."""

    def effective_status(self, now: float) -> ApprovalStatus:
        """The status at ``now``: a pending or approved approval past ``expires`` has expired."""
        if self.status in ("pending", "approved") and now >= self.expires:
            return "expired"
        return self.status

    def to_json(self) -> dict[str, object]:
        """The approval as a JSON object (what stores persist and ``approvals show --json`` prints)."""
        return {
            "id": self.id,
            "server_id": self.server_id,
            "tool": self.tool,
            "digest": self.digest,
            "preview": self.preview,
            "size": self.size,
            "rule": self.rule,
            "message": self.message,
            "created": self.created,
            "expires": self.expires,
            "timeout": self.timeout,
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "reason": self.reason,
            "via": self.via,
            "asked_by": self.asked_by,
            "client": self.client,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Approval:
        """Read an approval a store persisted with ``to_json``."""
        return cls(**data)  # type: ignore[arg-type]

    def answered(self, *, approve: bool, by: str, at: float, reason: str | None, via: str) -> Approval:
        """This approval with a person's answer; an approval lasts ``timeout`` from the moment it is given."""
        return replace(
            self,
            status="approved" if approve else "denied",
            decided_by=by,
            decided_at=at,
            reason=reason,
            via=via,
            expires=at + self.timeout if approve else self.expires,
        )
