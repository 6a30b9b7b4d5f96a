"""Server-sent events: turn the bytes of a ``text/event-stream`` body into events, incrementally.

Follows the WHATWG event-stream rules (lines end in CRLF, LF or a bare CR; ``data`` lines are
joined with LF; ``:`` starts a comment; an ``id`` with NUL is ignored; ``retry`` takes digits only).
An event larger than ``max_event`` is not buffered: it comes out as an ``Oversize`` marker with its
first bytes, so one huge answer cannot exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from regogate.proxy.relay._framing import MAX_LINE_BYTES, Oversize

_HEAD_BYTES = 512


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event; ``data`` is ``Oversize`` when it went past the size limit."""

    event: str
    data: bytes | Oversize
    id: str | None
    """The stream's last event id after this event (``None`` until the server sets one)."""


class SseDecoder:
    """Feed body chunks, get whole events; ``retry`` holds the server's reconnection delay in ms."""

    def __init__(self, *, max_event: int = MAX_LINE_BYTES) -> None:
        self._max_event = max_event
        self._buffer = bytearray()
        self._scan = 0
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._discarding = False  # inside a line past the limit: drop bytes up to its end
        self._data: list[bytes] = []
        self._size = 0
        self._head: bytes | None = None  # set once the pending event is oversize
        self._event = b""
        self.last_id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Decode ``chunk``; return the events it completed."""
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        if self._discarding:
            cut = min((i for i in (chunk.find(b"\n"), chunk.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                return []
            self._discarding = False
            self._skip_lf = chunk[cut] == 0x0D and cut + 1 == len(chunk)
            step = 2 if chunk[cut : cut + 2] == b"\r\n" else 1
            chunk = chunk[cut + step :]
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            line = self._next_line()
            if line is None:
                break
            event = self._line(line)
            if event is not None:
                events.append(event)
        if len(self._buffer) > self._max_event:
            # A single line past the limit: keep its head, drop the rest as it streams in.
            field, _, value = bytes(self._buffer[: _HEAD_BYTES + 8]).partition(b":")
            self._oversize(value.removeprefix(b" ")[:_HEAD_BYTES] if field == b"data" else b"")
            self._buffer.clear()
            self._scan = 0
            self._discarding = True
        return events

    def _next_line(self) -> bytes | None:
        buffer = self._buffer
        lf = buffer.find(b"\n", self._scan)
        cr = buffer.find(b"\r", self._scan, lf if lf >= 0 else len(buffer))
        end = cr if cr >= 0 else lf
        if end < 0:
            self._scan = len(buffer)
            return None
        line = bytes(buffer[:end])
        step = 1
        if buffer[end] == 0x0D:
            if end + 1 < len(buffer):
                step = 2 if buffer[end + 1] == 0x0A else 1
            else:
                self._skip_lf = True
        del buffer[: end + step]
        self._scan = 0
        return line

    def _oversize(self, head: bytes) -> None:
        if self._head is None:
            self._head = (b"\n".join(self._data) + head)[:_HEAD_BYTES]
        self._data.clear()

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            if self._head is not None:
                return None
            self._size += len(value) + 1
            if self._size > self._max_event:
                self._oversize(value[:_HEAD_BYTES])
            else:
                self._data.append(value)
        elif field == b"event":
            self._event = value
        elif field == b"id":
            if b"\0" not in value:
                self.last_id = value.decode("utf-8", "replace")
        elif field == b"retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        data: bytes | Oversize
        if self._head is not None:
            data = Oversize(self._head)
        elif self._data:
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        else:
            self._event = b""
            return None
        event = SseEvent(self._event.decode("utf-8", "replace") or "message", data, self.last_id)
        self._data, self._size, self._head, self._event = [], 0, None, b""
        return event
