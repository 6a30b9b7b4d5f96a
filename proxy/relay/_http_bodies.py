"""Whole messages to and from a Streamable HTTP server: answer bodies read with a bound, messages as one line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Protocol

from regogate.proxy.relay._codec import encode
from regogate.proxy.relay._wire import id_key

__all__ = ["ERROR_BODY_BYTES", "one_line", "read_bounded", "read_error_answer"]

ERROR_BODY_BYTES = 64 * 1024
"""How much of an HTTP error body is read, looking for a JSON-RPC error."""


class StreamedBody(Protocol):
    """An answer whose body arrives in chunks (the transport's ``Reply``)."""

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


async def read_bounded(response: StreamedBody, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it grows past ``limit`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_error_answer(response: StreamedBody, request_id: str | int) -> dict[str, object] | None:
    """The JSON-RPC error for ``request_id`` a server sent with an HTTP error status, if that is what it sent.

    Only the first ``ERROR_BODY_BYTES`` are looked at: an error page is not an answer.
    """
    body = await read_bounded(response, ERROR_BODY_BYTES)
    if body is None:
        return None
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if (
        isinstance(message, dict)
        and isinstance(message.get("error"), dict)
        and id_key(message.get("id")) == id_key(request_id)
    ):
        return message
    return None


def one_line(data: bytes) -> tuple[bytes, object]:
    """The message as one line, and its parsed form (``None`` if it is not JSON)."""
    try:
        message = json.loads(data)  # not orjson: it reads an integer past 64 bits (an id, say) as a float
    except ValueError:
        return data, None
    if b"\n" in data or b"\r" in data:
        data = encode(message)
    return data, message
