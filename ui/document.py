"""The open flow file behind the editor: its ruamel tree, undo history, saved and disk state.

The tree is edited in place, so a save keeps comments, key order and style, and a move touches
only the ``layout`` section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from flowengine.flowfile import FlowDocument
from flowengine.problems import FlowError, Pos, Problem
from flowengine.registry import Registry, default_registry
from flowengine.ui.disk import DiskChanged, DiskWatch
from flowengine.ui.history import History

NEW_FLOW = "version: 1\nname: {name}\nnodes: {{}}\nlayout: {{}}\n"
#: The file name endings of flow files (YAML or JSON).
FLOW_SUFFIXES = (".yaml", ".yml", ".json")


def flow_files(folder: str | Path) -> list[Path]:
    """The flow files in a folder (YAML and JSON), for ``flowengine edit DIR``."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FLOW_SUFFIXES)


def _yaml_str(text: str) -> str:
    """``text`` as a YAML scalar that reads back as that string (``yes`` or ``1`` get quotes)."""
    try:
        plain = YAML(typ="safe", pure=True).load(text) == text
    except YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def new_flow_text(path: Path) -> str:
    """The text of an empty flow named after ``path``: JSON for a ``.json`` name, else YAML."""
    if path.suffix.lower() == ".json":
        empty = {"version": 1, "name": path.stem, "nodes": {}, "layout": {}}
        return json.dumps(empty, indent=2) + "\n"
    return NEW_FLOW.format(name=_yaml_str(path.stem))


class ModelDocument:
    """One open flow file: the document, its history, what was saved and what is on disk."""

    def __init__(
        self, doc: FlowDocument, registry: Registry | None = None, *, allow_code: bool = False
    ) -> None:
        self.doc = doc
        self.allow_code = allow_code
        #: Bumped by every change of the document (edits, undo, reload): views redraw on it.
        self.revision = 0
        self.registry = registry or default_registry()
        self.path = doc.path
        self._ensure_sections()
        self._saved_text = doc.dumps()
        self._history = History(self._saved_text)
        self._disk = DiskWatch(self.path)
        self._dirty: tuple[int, bool] | None = None  # (revision, dirty): a dump costs

    # ---- opening -----------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | Path, registry: Registry | None = None, *, allow_code: bool = False
    ) -> Self:
        """Open a flow file; a file that does not parse raises :class:`FlowError`."""
        doc, problems = FlowDocument.read(path)
        if doc is None:
            raise FlowError(problems)
        return cls(doc, registry, allow_code=allow_code)

    @classmethod
    def create(cls, path: str | Path, registry: Registry | None = None) -> Self:
        """Write a new empty flow at ``path`` (which must not exist) and open it: YAML, or
        JSON for a ``.json`` name; any other name raises :class:`ValueError`."""
        path = Path(path)
        if path.suffix.lower() not in FLOW_SUFFIXES or not path.stem or path.name.startswith("."):
            raise ValueError(f"'{path.name}': a flow file name ends in .yaml, .yml or .json")
        if path.exists():
            raise FileExistsError(f"{path} exists")
        path.write_text(new_flow_text(path), encoding="utf-8")
        return cls.open(path, registry)

    def _ensure_sections(self) -> None:
        """Give the document the ``nodes`` and ``layout`` mappings every edit relies on."""
        data = self.doc.data
        if not isinstance(data, CommentedMap):
            raise FlowError([Problem(str(self.path), Pos(1, 1), "a flow file must be a mapping")])
        if not isinstance(data.get("nodes"), dict):
            data["nodes"] = CommentedMap()
        if not isinstance(data.get("layout"), dict):
            data["layout"] = CommentedMap()

    # ---- reading -----------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self.doc.dumps()

    @property
    def nodes(self) -> CommentedMap:
        return self.doc.data["nodes"]

    @property
    def layout(self) -> CommentedMap:
        return self.doc.data["layout"]

    @property
    def dirty(self) -> bool:
        """True when the document differs from what was last saved (or opened). Computed once
        per revision (every change bumps it): the editor asks every second, a dump is not free."""
        if self._dirty is None or self._dirty[0] != self.revision:
            self._dirty = (self.revision, self.text != self._saved_text)
        return self._dirty[1]

    # ---- history -----------------------------------------------------------------------
    def _commit(self) -> bool:
        """Record the current document as one undo step; False when nothing changed."""
        if not self._history.record(self.text):
            return False
        self.revision += 1
        return True

    def _load_text(self, text: str | None) -> bool:
        """Show a text of the history (None: there is none that way); True when shown."""
        if text is None:
            return False
        doc, problems = FlowDocument.parse(text, self.path)
        if doc is None:  # our own output always parses; a failure here is a bug
            raise FlowError(problems)
        doc.style = self.doc.style
        self.doc = doc
        self._ensure_sections()
        self.revision += 1
        return True

    @property
    def can_undo(self) -> bool:
        return self._history.can_undo

    @property
    def can_redo(self) -> bool:
        return self._history.can_redo

    def undo(self) -> bool:
        return self._load_text(self._history.undo())

    def redo(self) -> bool:
        return self._load_text(self._history.redo())

    # ---- disk --------------------------------------------------------------------------
    def changed_on_disk(self) -> bool:
        """True when the file's content changed since it was opened or last saved here."""
        return self._disk.changed()

    def save(self, *, force: bool = False) -> None:
        """Write the file (atomically); raises :class:`DiskChanged` when someone else changed
        it since it was opened, unless ``force``."""
        if not force and self.changed_on_disk():
            raise DiskChanged(f"{self.path} changed on disk since it was opened")
        self.doc.save()
        self._saved_text = self.text
        self._dirty = (self.revision, False)
        self._disk.remember()

    def reload(self) -> None:
        """Discard local edits and read the file again (after it changed on disk)."""
        doc, problems = FlowDocument.read(self.path)
        if doc is None:
            raise FlowError(problems)
        self.doc = doc
        self._ensure_sections()
        self._saved_text = self.text
        self._history.reset(self._saved_text)
        self._disk.remember()
        self.revision += 1
        self._dirty = (self.revision, False)
