"""Optional libraries: one message, in the seed's words, for every missing protocol library.

Protocol libraries are extras (``flowengine[opcua]``); node code imports them through
:func:`require` at the moment it needs them, so the core and ``flowengine --help`` import none.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

#: How the seed's error messages name each protocol library.
LIBRARY_LABELS = {
    "opcua": "OPC UA",
    "mqtt": "MQTT",
    "sql": "SQL",
    "postgres": "PostgreSQL",
    "mysql": "MySQL",
    "onnx": "ONNX",
    "skops": "skops",
    "editor": "Editor (NiceGUI)",
    "modbus": "Modbus",
    "s7": "Siemens S7",
    "enip": "EtherNet/IP",
    "secrets": "Encryption",
    "zstd": "zstd compression",
    "nats": "NATS",
}


class LibraryMissing(ImportError):
    """An optional protocol library is not installed; the message names the extra."""


def missing_message(extra: str) -> str:
    """The seed's message for a missing extra: "OPC UA library not available. Install ..."."""
    label = LIBRARY_LABELS.get(extra, extra)
    return (
        f"{label} library not available. Install 'flowengine[{extra}]' "
        f'(pip install "flowengine[{extra}]")'
    )


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`LibraryMissing` naming ``flowengine[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LibraryMissing(missing_message(extra)) from None


def installed(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package of a dotted name
        return False
