"""Line framing on file descriptors: what the peer's reader gets from each write."""

from __future__ import annotations

import os
import socket

import anyio
import pytest

from regogate.proxy.relay import LineWriter

pytestmark = pytest.mark.anyio


async def test_each_line_is_one_write_with_its_newline() -> None:
    # A packet socket keeps write boundaries: each recv returns exactly one write of the sender.
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    writer = LineWriter(ours.fileno())
    try:
        with anyio.fail_after(5):
            for line in (b'{"jsonrpc":"2.0","id":1,"result":{}}', b"x" * 4000):
                await writer.send(line)
                # A reader that wakes on the first bytes finds the whole line, never a line without its end.
                assert peer.recv(1 << 16) == line + b"\n"
    finally:
        writer.close()
        ours.close()
        peer.close()


async def test_a_line_larger_than_the_pipe_arrives_whole_and_in_order() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    writer = LineWriter(write_end, owned=True)
    line = bytes(range(97, 123)) * 40_000  # ~1 MB, far beyond a pipe's buffer
    received = bytearray()
    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer.send, line)
                os.set_blocking(read_end, False)
                while len(received) < len(line) + 1:
                    await anyio.wait_readable(read_end)
                    received += os.read(read_end, 1 << 16)
    finally:
        writer.close()
        os.close(read_end)
    assert bytes(received) == line + b"\n"
