"""S7 addresses as users write them, parsed into area, DB, byte, bit and data type; and the
values at such an address to and from bytes.

Spellings (case-insensitive, an optional leading ``%``; see docs/connectors-s7.md):

* STEP 7: ``DB10.DBX0.1``, ``DB10.DBB2``, ``DB10.DBW4``, ``DB10.DBD6``, ``DB10.DBSTRING8.20``,
  ``M0.1``, ``MB1``, ``MW2``, ``MD4``, ``I0.0``/``IB0``/``IW2``/``ID4``, ``Q0.1``/``QB0``/...
  (German ``E``/``A`` for ``I``/``Q``). The width letter gives only the size: ``B`` is a BYTE,
  ``W`` an INT and ``D`` a REAL unless the tag declares another type of that size.
* PLC4X: any of those with ``:TYPE`` (``DB10.DBD4:DINT``), and ``DB10:4:REAL``.
* nodeS7 / Node-RED: ``DB10,REAL4``, ``DB10,R4``, ``DB10,X0.1``, ``DB10,INT2``, ``DB10,S8.20``,
  ``MR4``; Telegraf: ``DB10.R4``, ``DB10.DI4``, ``DB10.X0.1``, ``DB10.S8.20``. Their codes name
  the type (``W`` is a WORD there, as those tools read it).
"""

from __future__ import annotations

import contextlib
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

#: Type -> (bytes, struct format); BOOL, CHAR and STRING are coded by hand.
TYPES: dict[str, tuple[int, str]] = {
    "BOOL": (1, ""),
    "BYTE": (1, "B"),
    "USINT": (1, "B"),
    "SINT": (1, "b"),
    "CHAR": (1, ""),
    "INT": (2, "h"),
    "UINT": (2, "H"),
    "WORD": (2, "H"),
    "DINT": (4, "i"),
    "UDINT": (4, "I"),
    "DWORD": (4, "I"),
    "REAL": (4, "f"),
    "LINT": (8, "q"),
    "ULINT": (8, "Q"),
    "LWORD": (8, "Q"),
    "LREAL": (8, "d"),
}
#: nodeS7 and Telegraf type codes.
CODES = {
    "X": "BOOL",
    "B": "BYTE",
    "C": "CHAR",
    "I": "INT",
    "W": "WORD",
    "U": "UINT",
    "D": "DWORD",
    "DW": "DWORD",
    "DI": "DINT",
    "UD": "UDINT",
    "R": "REAL",
    "LR": "LREAL",
    "LI": "LINT",
    "ULI": "ULINT",
    "LW": "LWORD",
    "S": "STRING",
} | {name: name for name in [*TYPES, "STRING"]}
#: STEP 7 width letters and the type each means when the tag declares none.
WIDTHS = {"X": "BOOL", "B": "BYTE", "W": "INT", "D": "REAL"}
#: Area letter -> (area, S7 area code).
AREAS = {
    "DB": ("DB", 0x84),
    "M": ("M", 0x83),
    "I": ("I", 0x81),
    "E": ("I", 0x81),
    "Q": ("Q", 0x82),
    "A": ("Q", 0x82),
}
MAX_BYTE = 65535
MAX_STRING = 254

_TYPE = r"[A-Z]+(?:\[\d+\])?"
_PLC4X_DB = re.compile(rf"^DB(\d+):(\d+)(?:\.(\d+))?:({_TYPE})$")
_SUFFIX = re.compile(rf"^(.*?):({_TYPE})$")
_STEP7_DB = re.compile(r"^DB(\d+)\.DB([XBWD])(\d+)(?:\.(\d+))?$")
_STEP7_STRING = re.compile(r"^DB(\d+)\.DB(?:STRING|S)(\d+)\.(\d+)$")
_CODED_DB = re.compile(r"^DB(\d+)[,.]([A-Z]+)(\d+)(?:\.(\d+))?$")
_AREA = re.compile(r"^([MIQEA])([A-Z]*)(\d+)(?:\.(\d+))?$")


@dataclass(frozen=True)
class Address:
    """One parsed address: where the value is and how many bytes of which type it takes."""

    area: str  # DB, M, I or Q
    db: int  # 0 outside data blocks
    byte: int
    bit: int  # the bit of a BOOL, else 0
    type: str  # a key of TYPES, or STRING
    length: int = 0  # the characters of a STRING

    @property
    def size(self) -> int:
        """Bytes the value takes (a STRING has two header bytes)."""
        return self.length + 2 if self.type == "STRING" else TYPES[self.type][0]

    @property
    def area_code(self) -> int:
        return AREAS[self.area][1]

    @property
    def type_name(self) -> str:
        return f"STRING[{self.length}]" if self.type == "STRING" else self.type

    def __str__(self) -> str:
        """The STEP 7 spelling (``DB10.DBD4``, ``M0.1``, ``DB10.DBB8`` for longer types)."""
        head = f"DB{self.db}.DB" if self.area == "DB" else self.area
        if self.type == "BOOL":
            return (
                f"{head}X{self.byte}.{self.bit}"
                if self.area == "DB"
                else f"{head}{self.byte}.{self.bit}"
            )
        letter = {1: "B", 2: "W", 4: "D"}.get(self.size, "B")
        return f"{head}{letter}{self.byte}"


def split_type(declared: str) -> tuple[str, int]:
    """``("STRING", 20)`` of ``STRING[20]``, ``("INT", 0)`` of ``int``; ValueError if unknown."""
    text = declared.strip().upper()
    match = re.fullmatch(r"(STRING)\s*\[\s*(\d+)\s*\]|([A-Z]+)", text)
    name = (match.group(1) or match.group(3)) if match else ""
    if name == "STRING":
        if not match or match.group(2) is None:
            raise ValueError("type STRING needs a length, e.g. STRING[20]")
        return name, _string_length(int(match.group(2)))
    if name not in TYPES:
        known = ", ".join([*TYPES, "STRING[n]"])
        raise ValueError(f"unknown type '{declared}' (known: {known})")
    return name, 0


def parse_address(text: str, declared: str | None = None) -> Address:
    """The :class:`Address` of ``text``; ``declared`` is the tag's ``type`` if it has one.

    A ValueError says what is wrong (unknown spelling, bit out of 0..7, a type that does not
    fit the width, ...).
    """
    raw = text.strip().upper().replace(" ", "").lstrip("%")
    if not raw:
        raise ValueError("empty address")
    if match := _PLC4X_DB.match(raw):
        db, byte, bit, suffix = match.groups()
        return _typed("DB", int(db), byte, bit, None, suffix, declared, text)
    suffix = None
    if match := _SUFFIX.match(raw):
        raw, suffix = match.group(1), match.group(2)
        if declared is not None and split_type(declared) != split_type(suffix):
            raise ValueError(f"'{text}' says {suffix} but the tag's type is {declared}")
    if match := _STEP7_STRING.match(raw):
        db, byte, length = match.groups()
        return _typed("DB", int(db), byte, length, "S", suffix, declared, text)
    if match := _STEP7_DB.match(raw):
        db, width, byte, bit = match.groups()
        return _width("DB", int(db), width, byte, bit, suffix or declared, text)
    if match := _CODED_DB.match(raw):
        db, code, byte, bit = match.groups()
        return _typed("DB", int(db), byte, bit, code, suffix, declared, text)
    if match := _AREA.match(raw):
        letter, code, byte, bit = match.groups()
        area = AREAS[letter][0]
        if code in ("", "X") and bit is not None:
            return _width(area, 0, "X", byte, bit, suffix or declared, text)
        if code in WIDTHS:
            return _width(area, 0, code, byte, bit, suffix or declared, text)
        if code == "":
            raise ValueError(
                f"'{text}' needs a width or a bit: {letter}B{byte}, {letter}W{byte}, "
                f"{letter}D{byte} or {letter}{byte}.0"
            )
        return _typed(area, 0, byte, bit, code, suffix, declared, text)
    raise ValueError(
        f"'{text}' is not an S7 address (e.g. DB10.DBD4, DB10.DBX0.1, MW20, I0.0, DB10,REAL4)"
    )


def _width(
    area: str, db: int, width: str, byte: str, bit: str | None, declared: str | None, text: str
) -> Address:
    """A STEP 7 address: the width letter gives the size, the declared type (if any) the type."""
    _check_db(area, db)
    offset = _check_byte(int(byte))
    if width == "X":
        if bit is None:
            raise ValueError(f"'{text}' is a bit address and needs a bit number, e.g. DBX0.1")
        if declared is not None and split_type(declared)[0] != "BOOL":
            raise ValueError(f"'{text}' is a bit; its type can only be BOOL, not {declared}")
        return Address(area, db, offset, _check_bit(int(bit), text), "BOOL")
    if bit is not None:
        raise ValueError(f"'{text}': only bit addresses (X) take '.{bit}'")
    if declared is None:
        return Address(area, db, offset, 0, WIDTHS[width])
    name, length = split_type(declared)
    if name == "BOOL":
        raise ValueError(f"'{text}' is not a bit address; a BOOL needs one, e.g. DBX0.1 or M0.1")
    size = {"B": 1, "W": 2, "D": 4}[width]
    found = Address(area, db, offset, 0, name, length)
    if found.size != size and not (width == "B" and found.size > 4):
        raise ValueError(
            f"'{text}' addresses {size} byte(s) but {found.type_name} takes {found.size}"
        )
    return found


def _typed(
    area: str,
    db: int,
    byte: str,
    tail: str | None,
    code: str | None,
    suffix: str | None,
    declared: str | None,
    text: str,
) -> Address:
    """A coded address (``DB10,REAL4``, ``DB10.R4``, ``MR4``) or PLC4X ``DB10:4:REAL``."""
    _check_db(area, db)
    offset = _check_byte(int(byte))
    if code is not None and code not in CODES:
        raise ValueError(f"'{text}': unknown type code '{code}' (e.g. X, B, W, I, DI, R, S)")
    spelled = CODES[code] if code is not None else None
    wanted = suffix or declared
    name, length = split_type(wanted) if wanted else (spelled or "", 0)
    if spelled and wanted and name != spelled:
        odd = {spelled, name} & {"BOOL", "STRING"}
        if odd or TYPES[spelled][0] != TYPES[name][0]:
            raise ValueError(f"'{text}' is a {spelled}; type {wanted} does not fit it")
    if name == "BOOL" or spelled == "BOOL":
        if tail is None:
            raise ValueError(f"'{text}' is a bit address and needs a bit number, e.g. X0.1")
        return Address(area, db, offset, _check_bit(int(tail), text), "BOOL")
    if spelled == "STRING" or name == "STRING":
        if tail is None and not length:
            raise ValueError(f"'{text}': a STRING needs its length, e.g. DB10,S8.20")
        if tail is not None and length and int(tail) != length:
            raise ValueError(f"'{text}' holds {tail} characters but the type says {length}")
        return Address(area, db, offset, 0, "STRING", length or _string_length(int(tail or 0)))
    if tail is not None:
        raise ValueError(f"'{text}': only bits and strings take '.{tail}'")
    return Address(area, db, offset, 0, name)


def _check_db(area: str, db: int) -> None:
    if area == "DB" and not 1 <= db <= 65535:
        raise ValueError(f"DB number {db} is out of range 1..65535")


def _check_byte(byte: int) -> int:
    if byte > MAX_BYTE:
        raise ValueError(f"byte offset {byte} is out of range 0..{MAX_BYTE}")
    return byte


def _check_bit(bit: int, text: str) -> int:
    if not 0 <= bit <= 7:
        raise ValueError(f"'{text}': bit {bit} is out of range 0..7")
    return bit


def _string_length(length: int) -> int:
    if not 1 <= length <= MAX_STRING:
        raise ValueError(f"STRING length {length} is out of range 1..{MAX_STRING}")
    return length


# ---- values ----------------------------------------------------------------------------------
def decode(address: Address, data: bytes | bytearray) -> Any:
    """The value of ``address`` from its ``size`` bytes (a BOOL from its byte)."""
    kind = address.type
    if len(data) < address.size:
        raise ValueError(f"{len(data)} byte(s) came back, {address.size} expected")
    if kind == "BOOL":
        return bool(data[0] >> address.bit & 1)
    if kind == "CHAR":
        return bytes(data[:1]).decode("latin-1")
    if kind == "STRING":
        declared, used = data[0], data[1]
        if used > min(declared or address.length, address.length):
            raise ValueError(f"STRING header says {used} characters in {declared}")
        return bytes(data[2 : 2 + used]).decode("latin-1")
    return struct.unpack(">" + TYPES[kind][1], bytes(data[: address.size]))[0]


def encode(address: Address, value: Any) -> bytes:
    """``value`` as the bytes of ``address`` (a BOOL as one byte, 1 or 0); a ValueError says
    why a value does not fit (out of INT range, not a number, too long for the STRING)."""
    kind = address.type
    if kind == "BOOL":
        return b"\x01" if to_bool(value) else b"\x00"
    if kind in ("CHAR", "STRING"):
        text = "" if value is None else str(value)
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{text!r} has characters outside latin-1") from None
        if kind == "CHAR":
            if len(raw) != 1:
                raise ValueError(f"{text!r} is not one character")
            return raw
        if len(raw) > address.length:
            raise ValueError(f"{text!r} is longer than STRING[{address.length}]")
        return bytes([address.length, len(raw)]) + raw.ljust(address.length, b"\0")
    number = to_number(value)
    fmt = TYPES[kind][1]
    if fmt in "fd":
        limit = 3.4028234663852886e38 if fmt == "f" else math.inf
        if abs(number) > limit:
            raise ValueError(f"{value!r} is out of {kind} range")
        return struct.pack(">" + fmt, number)
    whole = _whole(value, number)
    bits = TYPES[kind][0] * 8
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if fmt.islower() else (0, 2**bits - 1)
    if not low <= whole <= high:
        raise ValueError(f"{value!r} is out of {kind} range {low}..{high}")
    return struct.pack(">" + fmt, whole)


def _whole(value: Any, number: float) -> int:
    """``value`` as an exact int when it is one (a LINT/ULINT beyond 2**53 must not go
    through float), else ``number`` rounded."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    return round(number)


def to_bool(value: Any) -> bool:
    """True/False from a bool, a number or "true"/"false"/"on"/"off"/"1"/"0"."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{value!r} is not a BOOL")
    number = to_number(value)
    if number not in (0, 1):
        raise ValueError(f"{value!r} is not a BOOL (0 or 1)")
    return bool(number)


def to_number(value: Any) -> float:
    """A finite float from a number or numeric text; ValueError otherwise."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite")
    return number
