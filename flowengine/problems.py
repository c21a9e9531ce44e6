"""Problems found in a flow, printed as ``PATH:LINE:COL: node 'ID': message``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based line and column in a flow file (0 when unknown)."""

    line: int = 0
    col: int = 0


@dataclass(frozen=True, slots=True)
class Problem:
    """One error or warning, located in the file and attributed to a node where it can be."""

    path: str
    pos: Pos
    message: str
    node: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.pos.line}:{self.pos.col}: "
        who = f"node '{self.node}': " if self.node else ""
        level = "warning: " if self.severity == "warning" else ""
        return f"{where}{level}{who}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class FlowError(Exception):
    """A flow that cannot run; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.is_error]
        super().__init__("\n".join(str(p) for p in errors) or "invalid flow")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match, else an empty string."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
