"""The byte pipe under one HTTP/1.1 connection (the bridge's, and the OPA client's): a socket or a TLS stream.

A plain socket (TCP or unix) is read by the event loop's transport as bytes arrive (``Feed``): a
request is one write with no stream object between, and no extra pass of the event loop that an
anyio socket stream takes after every send (~30% of an exchange's CPU here, bench/notes.md). TLS
stays on anyio's stream. Both raise ``OSError`` or anyio's broken/closed errors on a fault; timeouts
are the caller's cancel scopes.
"""

from __future__ import annotations

import os
import select
import socket
import ssl

import anyio
import anyio.abc

from regogate.proxy.relay._feed import Feed

__all__ = ["READ_CHUNK", "SocketWire", "StreamWire", "Wire", "connect_wire"]

READ_CHUNK = 64 * 1024
"""One socket read."""
CONNECT_STAGGER = 0.25
"""How long an address may take to connect before the next address of the name is tried too."""
_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLRDHUP
_PEEK = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
"""Computed once: an IntFlag ``|`` builds a flag object each time (two per call)."""


class SocketWire:
    """A connected unix or plain TCP socket, read by the event loop as answers arrive (``Feed``).

    Registered with the loop once for the connection's life, not once per read; safe to cancel
    mid-wait (anyio's unix socket stream can resolve a read future that a timeout already cancelled).
    """

    __slots__ = ("feed", "sock")

    def __init__(self, sock: socket.socket, feed: Feed) -> None:
        self.sock = sock
        self.feed = feed

    @classmethod
    async def open(cls, sock: socket.socket) -> SocketWire:
        """The wire over ``sock``, a connected non-blocking stream socket, which it then owns."""
        try:
            return cls(sock, await Feed.of_socket(sock))
        except BaseException:
            sock.close()
            raise

    async def send(self, data: bytes, timeout: float | None = None) -> None:
        """Queue ``data`` (written at once when the socket takes it); it never waits, so ``timeout`` is moot:
        a peer that takes nothing shows as the answer's read timeout.

        Raises:
            ConnectionError: the connection ended.
        """
        self.feed.write(data)

    async def receive(self, timeout: float | None = None) -> bytes:
        """Some bytes, or ``b""`` once the peer closed.

        Raises:
            TimeoutError: nothing came within ``timeout`` seconds.
        """
        if not await self.feed.more(timeout):
            raise TimeoutError
        return self.feed.take()

    def quiet(self) -> bool:
        """Open with nothing unread: neither bytes the loop already read nor bytes still in the kernel."""
        if self.feed.pending or self.feed.ended:
            return False
        try:
            self.sock.recv(1, _PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # bytes nobody asked for, or b"" (closed)

    async def aclose(self) -> None:
        """Close; a task waiting in ``receive`` gets ``b""``."""
        self.feed.close()


class StreamWire:
    """An anyio byte stream (TLS)."""

    __slots__ = ("poller", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        self.poller: select.poll | None = None
        if raw is not None:
            self.poller = select.poll()
            self.poller.register(raw.fileno(), _POLL_EVENTS)

    async def send(self, data: bytes, timeout: float | None = None) -> None:
        with anyio.fail_after(timeout):
            await self.stream.send(data)

    async def receive(self, timeout: float | None = None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self.stream.receive(READ_CHUNK)
        except anyio.EndOfStream:
            return b""

    def quiet(self) -> bool:
        # Encrypted bytes on the raw socket are as telling as plain ones: anything there was not asked for.
        return self.poller is not None and not self.poller.poll(0)

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


Wire = SocketWire | StreamWire


async def connect_wire(host: str, port: int, ssl_context: ssl.SSLContext | None) -> Wire:
    """A connection to ``host:port``, TLS when ``ssl_context`` is given; the caller bounds the time.

    Raises:
        OSError: no address of ``host`` accepted the connection (or the name does not resolve).
        ssl.SSLError: the TLS handshake failed (a certificate not trusted, say).
    """
    if ssl_context is not None:
        stream = await anyio.connect_tcp(host, port, ssl_context=ssl_context, tls_standard_compatible=False)
        return StreamWire(stream)
    addresses = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    race = _Race()
    try:
        async with anyio.create_task_group() as tg:
            for family, kind, proto, _, address in addresses:
                failed = anyio.Event()
                tg.start_soon(race.attempt, family, kind, proto, address, failed, tg.cancel_scope)
                with anyio.move_on_after(CONNECT_STAGGER):
                    await failed.wait()  # the next address as soon as this one fails, or after the stagger
                if race.winner is not None:
                    break
    except BaseException:
        # Cancelled from outside (the session ended, say) after an attempt had won: its socket is ours to close.
        if race.winner is not None:
            race.winner.close()
        raise
    if race.winner is None:
        raise race.error or OSError(f"no address for {host}")
    return await SocketWire.open(race.winner)


class _Race:
    """Connection attempts to a name's addresses, staggered (RFC 8305's idea): the first to connect wins."""

    def __init__(self) -> None:
        self.winner: socket.socket | None = None
        self.error: OSError | None = None

    async def attempt(
        self,
        family: int,
        kind: int,
        proto: int,
        address: tuple[object, ...],
        failed: anyio.Event,
        scope: anyio.CancelScope,
    ) -> None:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.connect(address)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code)) from None
        except OSError as exc:
            sock.close()
            self.error = exc
            failed.set()
            return
        except BaseException:
            sock.close()
            raise
        if self.winner is not None:
            sock.close()
            return
        self.winner = sock
        scope.cancel()  # the other attempts, and the wait for the next one
