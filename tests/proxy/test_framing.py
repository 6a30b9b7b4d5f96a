"""Line framing on file descriptors: what the peer's reader gets from each write."""

from __future__ import annotations

import os
import socket

import anyio
import pytest

from regogate.proxy.relay import LineReader, LineWriter
from regogate.proxy.relay._feed import HIGH_WATER

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


async def test_a_reader_whose_lines_are_not_taken_leaves_the_rest_in_the_pipe() -> None:
    # The loop reads a pipe ahead of the lines taken, but only so far: then the writer blocks.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    reader = LineReader(read_end, owned=True)
    line = b"x" * 999 + b"\n"
    written = 0
    try:
        with anyio.fail_after(10):
            os.write(write_end, line)
            assert await reader.receive() == line[:-1]  # the reader is attached; nobody takes lines now
            written += len(line)
            while written < 64 * HIGH_WATER:
                try:
                    written += os.write(write_end, line)
                except BlockingIOError:
                    await anyio.sleep(0.05)  # the loop may still empty the pipe into the reader
                    try:
                        written += os.write(write_end, line)
                    except BlockingIOError:
                        break
                await anyio.sleep(0)
            assert written < 64 * HIGH_WATER, "the reader took everything the writer had"
            os.close(write_end)
            write_end = -1
            taken = [await reader.receive() for _ in range(written // len(line) - 1)]  # the first was taken
            assert all(got == line[:-1] for got in taken) and await reader.receive() is None
    finally:
        reader.close()
        if write_end >= 0:
            os.close(write_end)


async def test_closing_a_reader_ends_a_receive_that_waits() -> None:
    read_end, write_end = os.pipe()
    reader = LineReader(read_end)  # not owned: the caller's fd stays open after close
    got: list[object] = []

    async def receive() -> None:
        got.append(await reader.receive())

    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                await anyio.sleep(0.1)
                reader.close()
        assert got == [None]
        os.write(write_end, b"still open\n")  # both ends of the caller's pipe are still usable
        assert os.read(read_end, 100) == b"still open\n"
    finally:
        os.close(read_end)
        os.close(write_end)
