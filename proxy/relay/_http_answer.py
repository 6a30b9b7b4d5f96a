"""One HTTP/1.1 answer read with ``httptools`` (llhttp, the parser uvicorn uses), for regogate's two HTTP clients.

The bridge's transport streams the events as they come; the OPA client collects them into a whole body.
``reusable`` says whether the connection may carry the next request.
"""

from __future__ import annotations

from collections import deque

import httptools

__all__ = ["AnswerEvent", "AnswerHead", "HttpAnswer"]

AnswerHead = tuple[int, list[tuple[bytes, bytes]]]
AnswerEvent = AnswerHead | bytes | None
"""What an answer yields, in order: its status and headers, body chunks, ``None`` at its end."""


class HttpAnswer:
    """One HTTP/1.1 answer as ``httptools`` reads it; its callbacks queue the events a reader takes in order.

    Informational (1xx) answers are skipped; an answer with neither a length nor chunks ends with the
    connection; bytes after the answer (``extra``) are never read as the next one.
    """

    __slots__ = ("ended", "events", "extra", "framed", "headed", "headers", "informational", "keep_alive", "parser")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.events: deque[AnswerEvent] = deque()
        self.headers: list[tuple[bytes, bytes]] = []
        self.headed = self.framed = self.informational = self.ended = self.extra = self.keep_alive = False

    def feed(self, chunk: bytes) -> None:
        """Read ``chunk``; ``b""`` is the end of the connection.

        Raises:
            httptools.HttpParserError: the bytes are not an HTTP/1.1 answer.
            EOFError: the connection ended before the answer did.
        """
        if chunk:
            try:
                self.parser.feed_data(chunk)
            except httptools.HttpParserError:
                if not self.ended:
                    raise
                self.extra = True  # garbage after a whole answer: it stands, the connection goes
        elif self.headed and not self.framed and not self.ended:  # the close ends an unframed body
            self.ended = True
            self.events.append(None)
        elif not self.ended:
            raise EOFError

    def on_message_begin(self) -> None:
        if self.ended:
            self.extra = True  # bytes after the answer: a message nobody asked for

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.extra:
            self.headers.append((name, value))
            if name.lower() in (b"content-length", b"transfer-encoding"):
                self.framed = True

    def on_headers_complete(self) -> None:
        if self.extra:
            return
        status = self.parser.get_status_code()
        if status < 200:  # informational (1xx): the real answer follows
            self.informational = True
            self.headers = []
            self.framed = False
            return
        self.informational = False
        self.headed = True
        self.events.append((status, self.headers))

    def on_body(self, body: bytes) -> None:
        if not self.extra:
            self.events.append(bytes(body))

    def on_message_complete(self) -> None:
        if self.extra or self.informational:
            self.informational = False
            return
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the next message starts
        self.ended = True
        self.events.append(None)

    def reusable(self) -> bool:
        """The answer ended whole, the server keeps the connection open, and nothing came after it."""
        return self.ended and self.keep_alive and not self.extra
