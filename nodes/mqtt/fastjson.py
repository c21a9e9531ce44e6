"""JSON for the MQTT nodes: orjson when it is installed (several times faster per payload,
see docs/performance.md), else the standard library, with the same results.

``loads`` gives exactly what ``json.loads`` gives: whatever orjson refuses (NaN and Infinity
literals, numbers beyond a double, lone surrogates, a byte order mark, deep nesting, other
encodings) is read again by ``json``, so accepting and rejecting payloads does not depend on
which is installed. (One difference is left: an integer beyond 64 bits comes back as a float
from orjson; as a reading's value it is a float either way.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None  # type: ignore[assignment]

HAVE_ORJSON = orjson is not None


def loads(data: bytes) -> Any:
    """Parse one payload as ``json.loads`` would."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def _std_dumps(obj: Any, default: Callable[[Any], Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=default).encode()


def dumper(str_keys: bool = True) -> Callable[[Any], bytes]:
    """``dumps`` for many objects: compact JSON as UTF-8 bytes, ``str`` of what JSON has no
    type for, numpy scalars as numbers; ``str_keys=False`` when some keys are not strings
    (orjson is slower then). NaN and infinities must already be ``None`` without orjson."""
    if orjson is None:
        return partial(_std_dumps, default=str)
    option = orjson.OPT_SERIALIZE_NUMPY | (0 if str_keys else orjson.OPT_NON_STR_KEYS)
    return partial(orjson.dumps, default=str, option=option)


def dumps(obj: Any) -> bytes:
    """One object as compact JSON (see :func:`dumper`)."""
    return dumper(False)(obj)
