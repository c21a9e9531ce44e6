"""The editor's model: every edit of a flow file, in plain Python, testable without a browser.

:class:`EditorModel` is built in layers, one concern each: the open document with its history
and disk state (:mod:`.document`), what the views read (:mod:`.reading`), the edits
(:mod:`.edits`, wires through :mod:`.wiring`) and copy/paste/import (:mod:`.clipboard`).
"""

from __future__ import annotations

from flowengine.ui.clipboard import ModelClipboard
from flowengine.ui.disk import DiskChanged
from flowengine.ui.document import FLOW_SUFFIXES, flow_files
from flowengine.ui.history import HISTORY
from flowengine.ui.reading import COLORS, DEFAULT_COLOR
from flowengine.ui.views import parse_wire_key, wire_key

__all__ = [
    "COLORS",
    "DEFAULT_COLOR",
    "FLOW_SUFFIXES",
    "HISTORY",
    "DiskChanged",
    "EditorModel",
    "flow_files",
    "parse_wire_key",
    "wire_key",
]


class EditorModel(ModelClipboard):
    """One open flow file and its edit history. Every method that edits returns what changed
    (or False for no change) and records one undo step."""
