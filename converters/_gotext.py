"""Intercept's equality, worked out at conversion time: numbers by value, anything else by Go's ``%v`` text.

Intercept compares a JSON argument (numbers decode to float64) with a YAML value (int or float64)
numerically when both are numbers, and otherwise by their ``fmt`` ``%v`` strings, so ``"5"`` equals
``5``, ``"true"`` equals ``true`` and the number 1000000 (``1e+06``) does not equal ``"1000000"``.
For a fixed YAML value the set of JSON values equal to it is small: ``equal_forms`` lists them so the
generated Rego can say ``x in {5, "5"}`` instead of calling a printing helper on every call.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["EqualForms", "equal_forms", "go_float_text", "go_quote", "go_text"]

# Go's strconv 'g' switches to exponent form from this decimal exponent on when formatting shortest.
_EXPONENT_FROM = 6


def go_float_text(value: float) -> str:
    """``fmt.Sprintf("%v", float64(value))``: the shortest round-trip digits in Go's %g layout."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    point = len(text) + exponent  # digits before the decimal point
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= _EXPONENT_FROM:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_text(value: object) -> str:
    """``fmt.Sprintf("%v", v)`` for a value as yaml.v3 decodes it (ints stay ints, maps print sorted)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float_text(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_text(value[key])}" for key in sorted(value, key=str)) + "]"
    return str(value)


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string, for names in messages (``Denied by rule "a \\"b\\""``)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


# A JSON number prints as one of these (Go's shortest %v of a float64).
_GO_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?(e[+-][0-9]{2,3})?$")


def _number_printed_as(text: str) -> float | None:
    """The float64 whose %v text is exactly ``text``, if there is one."""
    if not _GO_NUMBER.match(text):
        return None
    number = float(text)
    if math.isinf(number) or go_float_text(number) != text:
        return None
    return number


def _container_like(text: str) -> bool:
    return text.endswith("]") and (text.startswith("[") or text.startswith("map["))


@dataclass(frozen=True)
class EqualForms:
    """The JSON values equal to a YAML value: scalars compared by Rego equality, and Go texts of containers."""

    values: tuple[object, ...]
    texts: tuple[str, ...]


def equal_forms(expected: object) -> EqualForms:
    """Every argument value Intercept's ``eq`` takes as equal to ``expected``.

    Scalars (strings, numbers, booleans, null) are listed as values; an argument that is a list or a
    map can only match by its printed text, which is listed in ``texts`` (compared in Rego by a helper).
    """
    text = go_text(expected)
    if isinstance(expected, list | dict):
        return EqualForms(values=(text,), texts=(text,))
    values: list[object] = [expected]
    if isinstance(expected, bool) or expected is None or isinstance(expected, int | float):
        values.append(text)
    else:
        assert isinstance(expected, str)
        number = _number_printed_as(expected)
        if number is not None:
            values.append(int(number) if number.is_integer() and abs(number) < 2**53 else number)
        elif expected in ("true", "false"):
            values.append(expected == "true")
        elif expected == "<nil>":
            values.append(None)
    texts = (text,) if _container_like(text) else ()
    return EqualForms(values=tuple(values), texts=texts)
