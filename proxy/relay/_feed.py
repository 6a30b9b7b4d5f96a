"""Bytes the event loop reads from a pipe or socket as they arrive, for one task to take.

Waiting with ``anyio.wait_readable`` registers the fd with the loop and unregisters it on every
read (under uvloop an ``epoll_ctl`` pair, a non-blocking ``ioctl`` and an ``io_uring`` submission
each time); a ``Feed`` is registered once, for the life of the connection, through the loop's own
transports. A ping-pong between two tasks over two pipes cost 88 µs of CPU per round trip one way
and 27 µs the other on the project's 2-core machine (bench/notes.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import typing

HIGH_WATER = 256 * 1024
"""Bytes read ahead of what the taker took; beyond it reading pauses (the peer's writes block)."""


class Feed(asyncio.Protocol):
    """What the loop read from one pipe or socket; ``more`` waits for it, ``take`` hands it over."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        """The loop that reads for it, kept: ``get_running_loop`` costs a ``getpid`` system call on 3.11."""
        self._chunks = bytearray()
        self.ended = False
        """The peer closed its end, or the connection broke (EIO, ECONNRESET...): nothing more will come."""
        self._paused = False
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[bool] | None = None

    @classmethod
    async def of_pipe(cls, fd: int) -> Feed:
        """Feed from a pipe, socket or terminal fd; the loop reads a duplicate, so ``fd`` stays the caller's."""
        loop = asyncio.get_running_loop()
        feed = cls(loop)
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
        try:
            await loop.connect_read_pipe(lambda: feed, pipe)
        except BaseException:
            pipe.close()
            raise
        return feed

    @classmethod
    async def of_socket(cls, sock: socket.socket) -> Feed:
        """Feed from a connected stream socket, which the feed then owns (``write``, ``close``)."""
        loop = asyncio.get_running_loop()
        feed = cls(loop)
        if sock.family == socket.AF_UNIX:
            await loop.create_unix_connection(lambda: feed, sock=sock)
        else:
            await loop.create_connection(lambda: feed, sock=sock)
        return feed

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = typing.cast(asyncio.Transport, transport)  # uvloop's do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._chunks += data
        if len(self._chunks) >= HIGH_WATER and self._transport is not None and not self._paused:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> None:
        self.ended = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake()

    # --- the taker's side ---------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Bytes arrived that nobody took yet."""
        return bool(self._chunks)

    def take(self) -> bytes:
        """Every byte that arrived since the last ``take`` (``b""`` if none)."""
        data = bytes(self._chunks)
        self._chunks.clear()
        return data

    async def more(self, timeout: float | None = None) -> bool:
        """Wait until bytes are there to take or the feed ended; a paused feed reads again first.

        False when ``timeout`` seconds passed first: a timer of the loop's, cheaper than a cancel scope.
        """
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        if self._chunks or self.ended:
            return True
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = None if timeout is None else self._loop.call_later(timeout, expire_waiter, waiter)
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def write(self, data: bytes) -> None:
        """Queue ``data`` to a socket feed's peer (written at once when the socket takes it).

        Raises:
            ConnectionError: the connection ended.
        """
        if self.ended or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the connection ended")
        self._transport.write(data)

    def close(self) -> None:
        """Stop reading and close the loop's duplicate or socket; a task waiting in ``more`` returns."""
        self.ended = True
        if self._transport is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)


def expire_waiter(waiter: asyncio.Future[bool]) -> None:
    """A loop timer's callback: a wait still pending ends with ``False`` (its time passed)."""
    if not waiter.done():
        waiter.set_result(False)
