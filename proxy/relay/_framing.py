"""Newline-delimited byte lines over raw file descriptors, without threads.

Pipes, sockets and terminals are switched to non-blocking mode: the event loop reads
them as bytes arrive (``Feed``) and a blocked write waits with ``anyio.wait_writable``,
so every wait is cancellable (a blocked worker-thread read is what kept earlier proxies
alive after SIGTERM). Regular files and ``/dev/null`` cannot be polled; they never
block, so they are read and written directly. The original fd flags are restored on
``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import select
import stat

import anyio
import anyio.lowlevel

from regogate.proxy.relay._feed import Feed

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longest line accepted; MCP sets no limit, 10 MiB payloads are real, 64 MiB bounds memory."""

READ_CHUNK_BYTES = 64 * 1024
"""One direct read (regular files); at 256 KiB each read cost an mmap, mremap and munmap."""

WRITE_DRAIN_TIMEOUT = 0.2
"""Time for a write in progress to finish before its pipe is closed under it."""

_ID_SNIFF_BYTES = 512
_ID_PATTERN = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\\r\n]|\\.){0,200}")')


class Oversize:
    """Stands in for a line longer than ``MAX_LINE_BYTES``; holds only its first bytes."""

    __slots__ = ("head",)

    def __init__(self, head: bytes) -> None:
        self.head = head


def sniff_id(head: bytes) -> str | int | None:
    """Best-effort request id of a line that could not be parsed whole.

    Only looks before ``"params"``/``"result"``, where SDKs put the envelope id, so a
    nested ``"id"`` inside arguments is not mistaken for it.
    """
    head = head[:_ID_SNIFF_BYTES]
    for key in (b'"params"', b'"result"', b'"error"'):
        cut = head.find(key)
        if cut >= 0:
            head = head[:cut]
    match = _ID_PATTERN.search(head)
    if match is None:
        return None
    raw = match.group(1)
    if raw.startswith(b'"'):
        try:
            text = raw[1:-1].decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text if "\\" not in text else None
    return int(raw)


def _pollable(mode: int, fd: int) -> bool:
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class _Fd:
    """An fd switched to non-blocking mode when it can be polled; ``close`` restores it."""

    def __init__(self, fd: int, *, owned: bool) -> None:
        self.fd = fd
        self._owned = owned
        self._closed = False
        mode = os.fstat(fd).st_mode
        self.fifo = stat.S_ISFIFO(mode)
        self.pollable = _pollable(mode, fd)
        self._blocking = os.get_blocking(fd)
        if self.pollable:
            os.set_blocking(fd, False)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # O_NONBLOCK lives on the open file, which other fds (a dup, the host's end) may share.
        with contextlib.suppress(OSError):
            os.set_blocking(self.fd, self._blocking)
        if self._owned:
            if self.pollable:
                anyio.notify_closing(self.fd)  # wakes a task still waiting on it
            os.close(self.fd)


class LineReader:
    """Reads ``\\n``-terminated lines from an fd; ``None`` at end of file.

    A pipe, socket or terminal is read by the event loop as bytes arrive (one registration for the
    reader's life, not one per read: that cost a third of a relayed message's CPU); regular files
    are read directly.
    """

    def __init__(self, fd: int, *, owned: bool = False, max_line: int = MAX_LINE_BYTES) -> None:
        self._fd = _Fd(fd, owned=owned)
        self._buffer = bytearray()
        self._scan_from = 0
        self._max_line = max_line
        self._eof = False
        self._skipping: bytes | None = None
        self._feed: Feed | None = None

    async def _fill(self) -> bool:
        """Read into the buffer; False at end of file."""
        if self._fd.closed:
            return False
        if not self._fd.pollable:
            await anyio.lowlevel.checkpoint()
            try:
                chunk = os.read(self._fd.fd, READ_CHUNK_BYTES)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF, errno.ECONNRESET):
                    return False
                raise
            self._buffer += chunk
            return bool(chunk)
        if self._feed is None:
            self._feed = await Feed.of_pipe(self._fd.fd)
        feed = self._feed
        await feed.more()
        if not feed.pending or self._feed is None:  # ended, or closed while waiting
            return False
        self._buffer += feed.take()
        return True

    async def receive(self) -> bytes | Oversize | None:
        """Next line without its newline, an ``Oversize`` marker, or ``None`` at end of file."""
        while True:
            newline = self._buffer.find(b"\n", self._scan_from)
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._scan_from = 0
                if self._skipping is not None:
                    head, self._skipping = self._skipping, None
                    return Oversize(head)
                return line
            if len(self._buffer) > self._max_line or self._skipping is not None:
                # Drop the body of an oversize line as it arrives; keep its head for the id.
                if self._skipping is None:
                    self._skipping = bytes(self._buffer[:_ID_SNIFF_BYTES])
                self._buffer.clear()
            self._scan_from = len(self._buffer)
            if self._eof or not await self._fill():
                self._eof = True
                if self._skipping is not None:
                    head, self._skipping = self._skipping, None
                    return Oversize(head)
                if self._buffer:
                    line = bytes(self._buffer)
                    self._buffer.clear()
                    return line
                return None

    def close(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.close()  # a task waiting for bytes sees the end
        self._fd.close()


class PeerClosed(Exception):
    """The reading end of a pipe went away."""


class LineWriter:
    """Writes whole lines to an fd; concurrent senders never interleave."""

    def __init__(self, fd: int, *, owned: bool = False) -> None:
        self._fd = _Fd(fd, owned=owned)
        # asyncio's lock, not anyio's: both take a free lock without a pass of the loop, but anyio's
        # asks for the current task on acquire and on release (a getpid system call each on 3.11).
        self._lock = asyncio.Lock()
        self._broken = False

    @property
    def closed(self) -> bool:
        return self._broken or self._fd.closed

    async def send(self, line: bytes) -> None:
        """Write ``line`` plus a newline.

        Raises:
            PeerClosed: the reader closed its end (or ``close`` was called).
        """
        async with self._lock:  # a free lock is taken at once, with no cancellation check on the way
            if self.closed:
                raise PeerClosed
            # One write for line and newline: one syscall, and one wake-up of the reader, not two.
            view = memoryview(line + b"\n")
            while view:
                try:
                    written = os.write(self._fd.fd, view)
                except BlockingIOError:
                    try:
                        await anyio.wait_writable(self._fd.fd)
                    except anyio.ClosedResourceError as exc:
                        raise PeerClosed from exc
                    continue
                except (BrokenPipeError, ConnectionResetError) as exc:
                    self._broken = True
                    raise PeerClosed from exc
                view = view[written:]

    def try_send(self, line: bytes) -> bool:
        """Write ``line`` plus a newline now if that needs no wait; False when nothing was written.

        Only a pipe qualifies: a write of at most ``PIPE_BUF`` bytes to a non-blocking pipe is all or
        nothing, so a full pipe (a server not reading) writes no part of the line. Nobody else may be
        writing (the lock is free), which keeps lines whole and in order.

        Raises:
            PeerClosed: as ``send``.
        """
        data = line + b"\n"
        if not self._fd.fifo or len(data) > select.PIPE_BUF or self._lock.locked():
            return False
        if self.closed:
            raise PeerClosed
        try:
            os.write(self._fd.fd, data)
        except BlockingIOError:
            return False
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._broken = True
            raise PeerClosed from exc
        return True

    async def aclose(self) -> None:
        """Close after any write in progress (bounded), so the peer sees a whole last line, then EOF."""
        with anyio.move_on_after(WRITE_DRAIN_TIMEOUT):
            async with self._lock:
                self._fd.close()
                return
        # A reader that stopped reading must not hold up shutdown: close under the stuck writer.
        self._fd.close()

    def close(self) -> None:
        self._fd.close()
