"""What the canvas draws, as plain typed dicts: shared by the model (no browser) and the canvas.

Kept free of NiceGUI so that `flowengine.ui.model` and its tests import without a browser.
"""

from __future__ import annotations

import re
from typing import NotRequired, TypedDict


class NodeView(TypedDict):
    """One node as the canvas draws it; `outputs` lists "error" last."""

    id: str
    type: str
    label: str
    x: float
    y: float
    inputs: list[str]
    outputs: list[str]
    color: str
    icon: NotRequired[str]
    disabled: NotRequired[bool]
    error: NotRequired[str | None]


class WireView(TypedDict):
    """One wire; `key` is "source:port->target:target_port" (see `wire_key`)."""

    key: str
    source: str
    port: str
    target: str
    target_port: str


class DiskBadge(TypedDict):
    """The badge on a node that holds data on disk: rows in short (`1.2k`), the whole story
    as its tooltip, and `warn` (amber) while its buffer is full or its sink is down."""

    label: str
    title: str
    warn: bool


class StatusView(TypedDict):
    """A node's live status: dot colour (green/yellow/red/grey/blue), text, rows/s, error,
    and what it holds on disk (only for nodes with a buffer or journal)."""

    color: str
    text: str
    rate: float
    error: NotRequired[str | None]
    disk: NotRequired[DiskBadge]


def wire_key(source: str, port: str, target: str, target_port: str) -> str:
    """The key the canvas and the app use for one wire."""
    return f"{source}:{port}->{target}:{target_port}"


_KEY = re.compile(r"^(?P<s>[^:]+):(?P<p>[^-]*)->(?P<t>[^:]+):(?P<tp>.*)$")


def parse_wire_key(key: str) -> tuple[str, str, str, str]:
    """The four parts of a wire key; raises ValueError on a malformed one."""
    match = _KEY.match(key)
    if not match:
        raise ValueError(f"bad wire key {key!r}")
    return match["s"], match["p"], match["t"], match["tp"]
