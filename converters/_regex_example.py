"""Find a string an RE2 pattern matches, for the generated tests, by reading RE2's syntax ourselves.

A policy's regexes are RE2: OPA's ``regex.match`` is Go's ``regexp`` and the loader checks each one
with RE2. So this reads RE2's syntax, not Python's. It covers the shapes policies use: literals and
escapes, ``.``, bracket classes (ranges, negation, ``\\d \\w \\s`` and their negations, POSIX names),
groups of every kind, flags, alternation (the first branch), anchors and word boundaries (they add
nothing), and repeats (each one taken the fewest times it allows). Anything else (Unicode classes,
octal escapes, ``\\C``) gives ``None``. The generated test then does without an example, as it does
for a pattern whose first branch cannot match. RE2 checks every example before it is used.

Why not a library: rstr, exrex and sre_yield walk CPython's private ``re._parser``, and so does
hypothesis's ``from_regex``. They read Python's syntax rather than RE2's, and they draw random strings
where the converter must be deterministic. hypothesis would also make ``regogate convert`` depend at
run time on a large test library.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import re2

__all__ = ["regex_example"]

Member = Callable[[str], bool]

_CLASSES: dict[str, Member] = {
    "d": lambda c: "0" <= c <= "9",
    "w": lambda c: c.isascii() and (c.isalnum() or c == "_"),
    "s": lambda c: c in " \t\n\f\r",
}
_POSIX: dict[str, Member] = {
    "alnum": lambda c: c.isascii() and c.isalnum(),
    "alpha": lambda c: c.isascii() and c.isalpha(),
    "ascii": lambda c: c.isascii(),
    "blank": lambda c: c in " \t",
    "cntrl": lambda c: c < " " or c == "\x7f",
    "digit": _CLASSES["d"],
    "graph": lambda c: "!" <= c <= "~",
    "lower": lambda c: "a" <= c <= "z",
    "print": lambda c: " " <= c <= "~",
    "punct": lambda c: "!" <= c <= "~" and not c.isalnum(),
    "space": lambda c: c in " \t\n\v\f\r",
    "upper": lambda c: "A" <= c <= "Z",
    "word": _CLASSES["w"],
    "xdigit": lambda c: c in "0123456789abcdefABCDEF",
}
_CONTROL = {"a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ZERO_WIDTH = {"A", "b", "B", "z"}
#: Characters tried, in order, for a class given by what it excludes (or by a predicate).
_TRIES = "abxZ0_ -!\t"
_REPEAT = re.compile(r"\{(\d+)(,\d*)?\}")


class _NoExample(Exception):
    """The pattern uses syntax outside what this reader knows."""


def regex_example(pattern: str) -> str | None:
    """A string ``pattern`` (RE2 syntax) matches somewhere in it, or None when none is found."""
    try:
        reader = _Reader(pattern)
        text = reader.alternation()
        if reader.pos != len(pattern):
            return None
        return text if re2.search(pattern, text) is not None else None
    except (_NoExample, re2.error):
        return None


def _first(member: Member) -> str:
    for char in _TRIES:
        if member(char):
            return char
    raise _NoExample


def _negate(member: Member) -> Member:
    return lambda c: not member(c)


class _Reader:
    def __init__(self, pattern: str) -> None:
        self.pattern, self.pos = pattern, 0

    def _peek(self) -> str:
        return self.pattern[self.pos] if self.pos < len(self.pattern) else ""

    def _take(self) -> str:
        char = self._peek()
        if not char:
            raise _NoExample
        self.pos += 1
        return char

    def alternation(self) -> str:
        """Read branches up to ``)`` or the end; the first branch's example."""
        first = self._sequence()
        while self._peek() == "|":
            self.pos += 1
            self._sequence()
        return first

    def _sequence(self) -> str:
        out: list[str] = []
        while self._peek() not in ("", "|", ")"):
            atom = self._atom()
            out.append(atom * self._repeat())
        return "".join(out)

    def _repeat(self) -> int:
        """The fewest times the atom just read must appear (1 when no repeat follows)."""
        least = 1
        while True:
            char = self._peek()
            if char in ("*", "?"):
                least, self.pos = 0, self.pos + 1
            elif char == "+":
                self.pos += 1
            elif char == "{" and (found := _REPEAT.match(self.pattern, self.pos)):
                least, self.pos = least * int(found.group(1)), found.end()
            else:
                return least
            if self._peek() == "?":  # lazy
                self.pos += 1

    def _atom(self) -> str:
        char = self._take()
        if char == "(":
            return self._group()
        if char == "[":
            return self._bracket()
        if char == ".":
            return "a"
        if char in "^$":
            return ""
        if char == "\\":
            return self._escape()
        return char

    def _group(self) -> str:
        if self._peek() == "?":
            self.pos += 1
            if self._peek() in ("P", "<"):
                end = self.pattern.find(">", self.pos)
                if end < 0:
                    raise _NoExample
                self.pos = end + 1
            else:
                while (char := self._take()) not in (":", ")"):
                    if char not in "imsU-":
                        raise _NoExample
                if char == ")":  # flags for the rest of the group: they cannot make the example fail
                    return ""
        text = self.alternation()
        if self._take() != ")":
            raise _NoExample
        return text

    def _escape(self) -> str:
        char = self._take()
        if char in _CLASSES:
            return _first(_CLASSES[char])
        if char.lower() in _CLASSES:
            return _first(_negate(_CLASSES[char.lower()]))
        if char in _ZERO_WIDTH:
            return ""
        if char == "Q":
            end = self.pattern.find("\\E", self.pos)
            end = len(self.pattern) if end < 0 else end
            text, self.pos = self.pattern[self.pos : end], min(end + 2, len(self.pattern))
            return text
        return self._character_escape(char)

    def _character_escape(self, char: str) -> str:
        """The character an escape stands for, inside or outside a class."""
        if char in _CONTROL:
            return _CONTROL[char]
        if char == "x":
            if self._peek() == "{":
                end = self.pattern.find("}", self.pos)
                if end < 0:
                    raise _NoExample
                digits, self.pos = self.pattern[self.pos + 1 : end], end + 1
            else:
                digits = self._take() + self._take()
            try:
                return chr(int(digits, 16))
            except ValueError:
                raise _NoExample from None
        if char.isascii() and not char.isalnum():
            return char
        raise _NoExample

    def _bracket(self) -> str:
        negated = self._peek() == "^"
        self.pos += negated
        members = [self._member()]  # each member with its own example; a ``]`` first is a member
        while self._peek() != "]":
            members.append(self._member())
        self.pos += 1
        if negated:
            return _first(lambda c: not any(member(c) for member, _ in members))
        return members[0][1]

    def _member(self) -> tuple[Member, str]:
        if self.pattern.startswith("[:", self.pos):
            end = self.pattern.find(":]", self.pos)
            name = self.pattern[self.pos + 2 : end] if end > 0 else ""
            posix = _POSIX.get(name.removeprefix("^"))
            if posix is None:
                raise _NoExample
            self.pos = end + 2
            member = _negate(posix) if name.startswith("^") else posix
            return member, _first(member)
        low = self._class_char()
        if isinstance(low, tuple):
            return low
        if self._peek() == "-" and self.pattern[self.pos + 1 : self.pos + 2] not in ("]", ""):
            self.pos += 1
            high = self._class_char()
            if isinstance(high, tuple):
                raise _NoExample
            return (lambda c: low <= c <= high), low
        return (lambda c: c == low), low

    def _class_char(self) -> str | tuple[Member, str]:
        """One character of a class, or a whole ``\\d``-style class inside it."""
        char = self._take()
        if char != "\\":
            return char
        char = self._take()
        if char in _CLASSES:
            return _CLASSES[char], _first(_CLASSES[char])
        if char.lower() in _CLASSES:
            member = _negate(_CLASSES[char.lower()])
            return member, _first(member)
        return self._character_escape(char)
