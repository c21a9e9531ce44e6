"""The editor's undo history: whole document texts, bounded, which makes undo exact whatever
the edit was (a diff per edit kind would have to be right for every kind)."""

from __future__ import annotations

#: How many document texts the history keeps.
HISTORY = 100


class History:
    """Document texts in edit order and where the document stands among them."""

    def __init__(self, text: str) -> None:
        self._texts = [text]
        self._at = 0

    @property
    def current(self) -> str:
        """The text the document has at this point of the history."""
        return self._texts[self._at]

    def reset(self, text: str) -> None:
        """Forget every step: ``text`` (a file read again) is the only one."""
        self._texts = [text]
        self._at = 0

    def record(self, text: str) -> bool:
        """Add ``text`` as the newest step (dropping any redo); False when it is no change."""
        if text == self.current:
            return False
        del self._texts[self._at + 1 :]
        self._texts.append(text)
        if len(self._texts) > HISTORY:
            del self._texts[0]
        self._at = len(self._texts) - 1
        return True

    @property
    def can_undo(self) -> bool:
        return self._at > 0

    @property
    def can_redo(self) -> bool:
        return self._at < len(self._texts) - 1

    def undo(self) -> str | None:
        """The text one step back, None at the oldest."""
        if not self.can_undo:
            return None
        self._at -= 1
        return self.current

    def redo(self) -> str | None:
        """The text one step forward, None at the newest."""
        if not self.can_redo:
            return None
        self._at += 1
        return self.current
