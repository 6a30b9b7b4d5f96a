"""A seeded wire fuzzer through the real CLI, real OPA and real servers.

Each session sends a few dozen hostile lines (invalid JSON, batches, odd ids and id
types, duplicate ids, odd params and tool names, BOMs and other encodings, CR/CRLF,
split writes, huge and deep lines, duplicate keys, calls smuggled behind CRs) and then
checks what a user would notice: regogate did not crash, every request got exactly
one answer (a cancelled one at most one), and no denied call reached the server under
any line reader. The server's side is seen through the wire recorder
(tests/servers/wire_recorder.py): teeing mcp-server-time and the Python stand-in, and
on its own as a server that splits its input at ``\\n`` only.

Seeds come from ``REGOGATE_FUZZ_SEEDS`` (comma-separated) to replay a failure.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from tests.conftest import POLICIES
from tests.e2e.harness import STANDIN, TIME_SERVER
from tests.e2e.test_wire_regressions import RECORDER_POLICY, TIME_POLICY
from tests.e2e.wire import RawSession, raw_regogate, recorder

pytestmark = pytest.mark.anyio

LINES_PER_SESSION = 60
SESSION_TIMEOUT = 150
SEEDS = [int(s) for s in os.environ.get("REGOGATE_FUZZ_SEEDS", "8,13").split(",")]


@dataclass(frozen=True)
class Target:
    """A server with one tool the policy allows and one it denies."""

    command: list[str]
    policy: str | None  # YAML text; None: policies/python.yaml
    allowed: tuple[str, dict[str, object]]
    denied: tuple[str, dict[str, object]]
    slow: str | None = None  # a tool whose answer takes a while, so ids stay in flight


TARGETS = {
    "recorder": Target([], RECORDER_POLICY, ("safe", {}), ("danger", {}), slow="slow"),
    "mcp-server-time": Target(
        [TIME_SERVER],
        TIME_POLICY,
        ("convert_time", {"source_timezone": "UTC", "time": "10:00", "target_timezone": "UTC"}),
        ("get_current_time", {"timezone": "UTC"}),
    ),
    "python-stand-in": Target(STANDIN, None, ("black", {"path": "."}), ("conda", {"command": "remove --all"})),
}


def key(request_id: object) -> str:
    """An id as JSON text, so 1, "1", 1.5 and true stay apart."""
    return json.dumps(request_id)


@dataclass
class Plan:
    """What was sent, and what the client must get back for it."""

    chunks: list[list[bytes]] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    at_most_one: set[str] = field(default_factory=set)
    null_answers: int = 0


class Fuzzer:
    """Builds one session's hostile lines from a seed."""

    def __init__(self, seed: int, target: Target) -> None:
        self.rng = random.Random(seed)
        self.target = target
        self.plan = Plan()
        self._next = 0
        self._huge_left = 1

    def fresh_id(self) -> object:
        self._next += 1
        return self._next if self.rng.random() < 0.5 else f"f{self._next}"

    def call(self, request_id: object, tool: tuple[str, dict[str, object]]) -> dict[str, object]:
        name, arguments = tool
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }

    def add(self, data: bytes, *, answered: Sequence[object] = (), null: int = 0, maybe: object | None = None) -> None:
        pieces = [data]
        if self.rng.random() < 0.3 and len(data) > 4:  # split writes
            cuts = sorted(self.rng.sample(range(1, len(data)), min(3, len(data) - 1)))
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        self.plan.chunks.append(pieces)
        for request_id in answered:
            self.plan.answers[key(request_id)] += 1
        self.plan.null_answers += null
        if maybe is not None:
            self.plan.at_most_one.add(key(maybe))

    def end(self) -> bytes:
        return b"\r\n" if self.rng.random() < 0.2 else b"\n"

    def line(self, message: object) -> bytes:
        return json.dumps(message, ensure_ascii=self.rng.random() < 0.5).encode() + self.end()

    def smuggled(self) -> bytes:
        inner = json.dumps(self.call(self.fresh_id(), self.target.denied)).encode()
        return b"\r" + inner + b"\r"

    # --- the cases ------------------------------------------------------------------------

    def allowed_call(self) -> None:
        request_id = self.fresh_id()
        self.add(self.line(self.call(request_id, self.target.allowed)), answered=[request_id])

    def denied_call(self) -> None:
        request_id = self.fresh_id()
        self.add(self.line(self.call(request_id, self.target.denied)), answered=[request_id])

    def smuggle_in_ping(self) -> None:
        request_id = self.fresh_id()
        data = b'{"jsonrpc":"2.0","id":%s,"method":"ping","params":{"p":%s}}\n' % (
            key(request_id).encode(),
            self.smuggled(),
        )
        self.add(data, answered=[request_id])

    def smuggle_in_arguments(self) -> None:
        request_id = self.fresh_id()
        head = json.dumps(self.call(request_id, self.target.allowed)).encode()[:-3]  # cut "}}}"
        extra = b"" if head.endswith(b"{") else b","
        self.add(head + extra + b'"x":' + self.smuggled() + b"}}}\n", answered=[request_id])

    def smuggle_in_response(self) -> None:
        self.add(b'{"jsonrpc":"2.0","id":"srv-%d","result":{"r":%s}}\n' % (self.rng.randrange(99), self.smuggled()))

    def ping(self) -> None:
        request_id = self.fresh_id()
        self.add(self.line({"jsonrpc": "2.0", "id": request_id, "method": "ping"}), answered=[request_id])

    def tools_list(self) -> None:
        request_id = self.fresh_id()
        self.add(self.line({"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}), answered=[request_id])

    def other_encoding(self) -> None:
        text = json.dumps(self.call(self.fresh_id(), self.target.denied))
        data = self.rng.choice(
            [b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16"), text.encode("utf-32-le"), text.encode() + b"\xff"]
        )
        self.add(data + b"\n", null=1)

    def garbage(self) -> None:
        junk = bytes(self.rng.choice(b'{}[]":,abc01 \t\\') for _ in range(self.rng.randrange(1, 40)))
        self.add(b"{" + junk + b"{\n", null=1)

    def batch_or_scalar(self) -> None:
        batch = [{"jsonrpc": "2.0", "id": self.fresh_id(), "method": "ping"}]
        self.add(self.line(self.rng.choice([batch, 42, "x", None, []])), null=1)

    def odd_id(self) -> None:
        request_id = self.rng.choice([1.5, True, False, [1], {}, 2**60, -(2**60), 1e3])
        method = self.rng.choice(["tools/list", "ping", "tools/call"])
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {"name": self.target.denied[0]}}
        self.add(self.line(message), answered=[request_id])

    def null_id(self) -> None:
        self.add(self.line({"jsonrpc": "2.0", "id": None, "method": "tools/list"}), null=1)

    def duplicate_id(self) -> None:
        request_id = self.fresh_id()
        first = (
            self.call(request_id, (self.target.slow, {}))
            if self.target.slow
            else {"jsonrpc": "2.0", "id": request_id, "method": "tools/list"}
        )
        second = self.rng.choice(
            [self.call(request_id, self.target.denied), {"jsonrpc": "2.0", "id": request_id, "method": "ping"}]
        )
        self.add(self.line(first) + self.line(second), answered=[request_id, request_id])

    def deep(self) -> None:
        request_id = self.fresh_id()
        depth = self.rng.choice([101, 999, 5000])
        opener, closer = self.rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        inner = opener * depth + (b"1" if opener != b"[" else b"") + closer * depth
        data = b'{"jsonrpc":"2.0","id":%s,"method":"ping","params":{"p":%s}}\n' % (key(request_id).encode(), inner)
        self.add(data, answered=[request_id])

    def duplicate_key(self) -> None:
        request_id = self.fresh_id()
        rid = key(request_id).encode()
        name = self.target.denied[0].encode()
        allowed = self.target.allowed[0].encode()
        variant = self.rng.randrange(3)
        if variant == 0:  # the name twice: which one would the server run?
            data = b'{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","name":"%s"}}\n' % (
                rid,
                allowed,
                name,
            )
            self.add(data, answered=[request_id])
        elif variant == 1:
            data = b'{"jsonrpc":"2.0","id":%s,"method":"ping","method":"tools/call","params":{"name":"%s"}}\n' % (
                rid,
                name,
            )
            self.add(data, answered=[request_id])
        else:  # the id twice: unreadable, so the error has id null
            data = b'{"jsonrpc":"2.0","id":%s,"id":"other","method":"ping"}\n' % rid
            self.add(data, null=1)

    def odd_call(self) -> None:
        request_id = self.fresh_id()
        denied = self.target.denied[0]
        params = self.rng.choice(
            [
                {"name": ""},
                {"name": 5},
                {"name": None},
                {"name": denied.upper()},
                {"name": f" {denied}"},
                {"name": f"{denied}\u200b"},
                {"name": f"{denied}\u2028"},
                {"name": denied, "arguments": "x"},
                {"name": denied, "arguments": [1]},
                {"name": denied, "_meta": 5},
                [denied],
                "x",
            ]
        )
        self.add(
            self.line({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}),
            answered=[request_id],
        )

    def notification(self) -> None:
        message = self.rng.choice(
            [
                {"jsonrpc": "2.0", "method": "notifications/whatever", "params": {"x": 1}},
                {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": self.target.denied[0]}},
                {"jsonrpc": "2.0", "id": "srv-1", "result": {}},
                {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "nobody"}},
                {"jsonrpc": "2.0"},
            ]
        )
        self.add(self.line(message))

    def cancelled_call(self) -> None:
        request_id = self.fresh_id()
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        tool = (self.target.slow, {}) if self.target.slow else self.target.allowed
        self.add(self.line(self.call(request_id, tool)) + self.line(cancel), maybe=request_id)

    def method_type(self) -> None:
        request_id = self.fresh_id()
        self.add(
            self.line({"jsonrpc": "2.0", "id": request_id, "method": self.rng.choice([5, None, ["ping"]])}),
            answered=[request_id],
        )

    def bad_numbers(self) -> None:
        rid = key(self.fresh_id()).encode()
        value = self.rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400"])
        self.add(b'{"jsonrpc":"2.0","id":%s,"method":"ping","params":{"n":%s}}\n' % (rid, value), null=1)

    def huge(self) -> None:
        if not self._huge_left:
            return self.ping()
        self._huge_left -= 1
        request_id = self.fresh_id()
        blob = "é" * self.rng.randrange(500_000, 1_000_000)
        self.add(
            self.line({"jsonrpc": "2.0", "id": request_id, "method": "ping", "params": {"blob": blob}}),
            answered=[request_id],
        )
        return None

    def build(self, count: int) -> Plan:
        cases: list[Callable[[], None]] = [
            self.allowed_call, self.denied_call, self.smuggle_in_ping, self.smuggle_in_arguments,
            self.smuggle_in_response, self.ping, self.tools_list, self.other_encoding, self.garbage,
            self.batch_or_scalar, self.odd_id, self.null_id, self.duplicate_id, self.deep, self.duplicate_key,
            self.odd_call, self.notification, self.cancelled_call, self.method_type, self.bad_numbers, self.huge,
        ]  # fmt: skip
        for case in cases:  # every kind at least once, then a seeded mix
            case()
        for _ in range(count - len(cases)):
            self.rng.choice(cases)()
        return self.plan


def readers(data: bytes) -> dict[str, list[str]]:
    """How each common reader splits what the server received (strict UTF-8 for all)."""
    text = data.decode("utf-8", errors="strict")
    split = {
        "\\n": text.split("\n"),
        "\\r\\n": [line.removesuffix("\r") for line in text.split("\n")],
        "\\r": re.split("\r|\n", text),
        "universal newlines": list(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=None)),
        "str.splitlines": text.splitlines(),
    }
    return {name: [line for line in lines if line.strip()] for name, lines in split.items()}


def tools_called(data: bytes) -> list[object]:
    """Names of every tools/call the server received; every reader must agree on every message."""
    views = readers(data)
    messages = [json.loads(line) for line in views["\\n"]]
    for name, lines in views.items():
        assert [json.loads(line) for line in lines] == messages, f"a {name} reader sees other messages"
    return [m["params"]["name"] for m in messages if isinstance(m, dict) and m.get("method") == "tools/call"]


async def send_plan(session: RawSession, plan: Plan) -> None:
    for pieces in plan.chunks:
        for piece in pieces:
            await session.send(piece)
            await anyio.lowlevel.checkpoint()


def answer_counts(session: RawSession) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    nulls = 0
    for message in session.received:
        if "method" in message:
            continue
        if message.get("id") is None:
            nulls += 1
        else:
            counts[key(message["id"])] += 1
    return counts, nulls


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("server", sorted(TARGETS))
async def test_hostile_wire_input_never_crashes_never_runs_a_denied_call_and_answers_each_id_once(
    tmp_path: Path, server: str, seed: int
) -> None:
    if server != "recorder" and seed != SEEDS[0]:
        pytest.skip("real servers get the first seed; the recorder gets them all")
    target = TARGETS[server]
    policy = POLICIES / "python.yaml"
    if target.policy is not None:
        policy = tmp_path / "policy.yaml"
        policy.write_text(target.policy, encoding="utf-8")
    log = tmp_path / "wire"
    plan = Fuzzer(seed, target).build(LINES_PER_SESSION)
    expected = {k: n for k, n in plan.answers.items() if k not in plan.at_most_one}
    stderr = tmp_path / "stderr"
    with anyio.fail_after(SESSION_TIMEOUT):
        async with raw_regogate(policy, recorder(log, *target.command), stderr, "--state", "memory") as session:
            await session.handshake()

            async def send_all() -> None:  # while answers are read, so no pipe fills up
                await send_plan(session, plan)
                await session.send(b'{"jsonrpc":"2.0","id":"end","method":"ping"}\n')

            def all_answered(_: object) -> bool:
                counts, _nulls = answer_counts(session)
                return all(counts[k] >= n for k, n in expected.items()) and counts[key("end")] == 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(send_all)
                await session.until(all_answered, timeout=SESSION_TIMEOUT)
            await session.close()
    counts, nulls = answer_counts(session)
    counts.pop(key("end"))
    counts.pop(key("init"))
    replay = f"(replay with REGOGATE_FUZZ_SEEDS={seed})"
    for request_id in plan.at_most_one:
        assert counts.pop(request_id, 0) <= 1, f"cancelled {request_id} answered twice {replay}"
    assert dict(counts) == expected, f"answers per id differ {replay}"
    assert nulls == plan.null_answers, f"id-null errors differ {replay}"
    assert not session.unparseable, f"regogate wrote lines that are not JSON {replay}"
    assert not any(str(m.get("id", "")).startswith("regogate:") for m in session.received)
    if server == "recorder":
        assert "hidden" not in json.dumps([m for m in session.received if "result" in m])
    called = tools_called(log.with_suffix(".in").read_bytes())
    assert target.denied[0] not in called, f"a denied call reached the server {replay}"
    if server == "recorder":
        ran = log.with_suffix(".calls").read_text(encoding="utf-8").split("\n")
        assert target.denied[0] not in ran
    assert "Traceback" not in stderr.read_text(encoding="utf-8")
