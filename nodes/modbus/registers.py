"""Registers to values and back: the data types, the four byte orders, scale and offset.

Modbus moves 16-bit registers, each sent high byte first. A 32-bit value spans two registers
and devices disagree on how its four bytes ``A B C D`` (A the most significant) are laid out:

* ``ABCD``: big-endian, the protocol's own order (most PLCs; Schneider "high word first").
* ``CDAB``: word-swapped, low register first (many meters; "little-endian word order").
* ``BADC``: byte-swapped within each register, high register first.
* ``DCBA``: fully little-endian.

64-bit values follow the same rule over four registers (``CDAB`` reverses the four registers,
``BADC`` swaps the bytes of each). 16-bit values only see the byte swap (``BADC``/``DCBA``).
Strings take the byte swap only: two characters per register, cut at the first NUL.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import numpy as np

Kind: TypeAlias = Literal["coil", "discrete", "holding", "input"]
DataType: TypeAlias = Literal[
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
]
ByteOrder: TypeAlias = Literal["ABCD", "DCBA", "BADC", "CDAB"]

BIT_KINDS = ("coil", "discrete")
#: Registers per value (bool: one bit of a coil/discrete input).
WIDTH = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}
STRUCT = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}
#: The range of each integer type (what a write must fit).
INT_RANGE = {
    name: (-(2 ** (16 * WIDTH[name] - 1)), 2 ** (16 * WIDTH[name] - 1) - 1)
    if name.startswith("int")
    else (0, 2 ** (16 * WIDTH[name]) - 1)
    for name in ("int16", "uint16", "int32", "uint32", "int64", "uint64")
}
FLOAT32_MAX = 3.4028234663852886e38
TRUE_TEXT, FALSE_TEXT = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _swapped(order: str) -> bool:
    return order in ("BADC", "DCBA")


def _reversed(order: str) -> bool:
    return order in ("CDAB", "DCBA")


def to_bytes(registers: Sequence[int], order: str, words: bool = True) -> bytes:
    """The value's bytes most significant first (``A B C D ...``) from registers as received."""
    regs = np.asarray(registers, dtype=np.uint16)
    if words and _reversed(order):
        regs = regs[::-1]
    return regs.astype("<u2" if _swapped(order) else ">u2").tobytes()


def from_bytes(data: bytes, order: str, words: bool = True) -> list[int]:
    """Registers to send for the value bytes ``A B C D ...`` (inverse of :func:`to_bytes`)."""
    regs = np.frombuffer(data, dtype="<u2" if _swapped(order) else ">u2")
    if words and _reversed(order):
        regs = regs[::-1]
    return [int(r) for r in regs]


def decode(registers: Sequence[int], dtype: str, order: str) -> Any:
    """One value of ``dtype`` from its registers (exactly its width; strings: ``length``)."""
    if dtype == "string":
        raw = to_bytes(registers, order, words=False).split(b"\0", 1)[0]
        return raw.decode("utf-8", errors="replace")
    value = struct.unpack(">" + STRUCT[dtype], to_bytes(registers, order))[0]
    return value


def scaled(raw: Any, scale: float, offset: float) -> Any:
    """``raw * scale + offset``; the raw value untouched (an exact int) when both are neutral."""
    if scale == 1.0 and offset == 0.0:
        return raw
    return float(raw) * scale + offset


def number(value: Any) -> float | int:
    """A row's value as a number (numeric text, bools and numpy scalars included)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                pass
    raise ValueError(f"{value!r} is not a number")


def to_bool(value: Any) -> bool:
    """A coil value from True/False, 0/1 or their usual words; anything else is refused."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXT or text in FALSE_TEXT:
            return text in TRUE_TEXT
    elif isinstance(value, bool | int | float) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{value!r} is not a bool (true/false, 1/0, on/off)")


def encode(value: Any, dtype: str, order: str, scale: float, offset: float, length: int) -> Any:
    """The registers (or, for ``bool``, the bit) that write ``value``: the inverse of
    :func:`scaled` and :func:`decode`, refusing what does not fit instead of wrapping around.
    """
    if isinstance(value, np.generic):
        value = value.item()  # messages show 70000, not np.int64(70000)
    if dtype == "bool":
        return to_bool(value)
    if dtype == "string":
        data = str(value).encode("utf-8")
        if len(data) > 2 * length:
            raise ValueError(f"{value!r} is {len(data)} bytes; the field holds {2 * length}")
        return from_bytes(data.ljust(2 * length, b"\0"), order, words=False)
    raw = number(value)
    if scale != 1.0 or offset != 0.0:
        raw = (raw - offset) / scale
    if not math.isfinite(raw):
        raise ValueError(f"{value!r} is not a finite number")
    if dtype in INT_RANGE:
        low, high = INT_RANGE[dtype]
        whole = round(raw)
        if not low <= whole <= high:
            raise ValueError(f"{value!r} does not fit {dtype} ({low}..{high})")
        return from_bytes(struct.pack(">" + STRUCT[dtype], whole), order)
    if dtype == "float32" and abs(raw) > FLOAT32_MAX:
        raise ValueError(f"{value!r} does not fit float32 (+/-3.4e38)")
    return from_bytes(struct.pack(">" + STRUCT[dtype], float(raw)), order)
