"""Node-RED values in our terms: names as slugs, numbers, durations, ``msg`` properties as
columns. Node-RED types its values loosely (numbers as text, units as words), so every mapper
reads them through these few functions."""

from __future__ import annotations

import keyword
import math
import re
import unicodedata
from collections.abc import Container
from typing import Any

#: A name usable as a column or variable in an expression.
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNITS = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600, "day": 86400}


def slug(text: str, limit: int = 40) -> str:
    """A readable id made of ``text`` (ASCII, lower case, ``_`` between words)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    result = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")[:limit].rstrip("_")
    return f"n_{result}" if result[:1].isdigit() else result


def env_name(text: str) -> str:
    """An environment variable name part made of ``text``."""
    return slug(text, 30).upper() or "NODE"


def port_name(text: str) -> str:
    """A port name (letters, digits, _ and -) made of a rule's operator and values."""
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_").lower()[:40]


def number(value: Any) -> float | None:
    """``value`` as a finite number (Node-RED often keeps numbers as text), else None."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def whole(value: float) -> int | float:
    """A number as an int when it is whole (JSON and YAML then show no ``.0``)."""
    return int(value) if value.is_integer() else value


def truthy(value: Any) -> bool:
    """A Node-RED boolean, which an export may hold as text."""
    return str(value).lower() == "true"


def var_ref(name: Any) -> str:
    """A ``${NAME}`` reference to an environment variable."""
    return "${" + str(name) + "}"


def unique(name: str, taken: Container[str]) -> str:
    """``name``, else ``name_2``, ``name_3``... whichever is not ``taken``."""
    result, n = name, 2
    while result in taken:
        result, n = f"{name}_{n}", n + 1
    return result


def num_text(value: float) -> str:
    """A number as an expression literal: whole numbers without ``.0``."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def to_int(value: Any) -> int:
    """``value`` as a whole number, 0 when it is none (layout coordinates)."""
    result = number(value)
    return int(result) if result is not None else 0


def column(prop: Any) -> str | None:
    """The column a ``msg`` property maps to: payload -> value, payload.X or X -> X."""
    prop = str(prop or "").removeprefix("msg.")
    if prop == "payload":
        return "value"
    rest = prop.removeprefix("payload.")
    return rest if IDENT.match(rest) else None


def ref(name: str) -> str:
    """A column as an expression operand (back-quoted when it is a Python keyword)."""
    return f"`{name}`" if keyword.iskeyword(name) else name


def seconds(amount: Any, unit: Any) -> float | None:
    """A Node-RED amount and unit (``"5"``, ``"minutes"``) in seconds, None if either is off."""
    value = number(amount)
    factor = _UNITS.get(str(unit or "seconds").removesuffix("s"))
    return None if value is None or factor is None else value * factor
