"""Every link and repository path named in the README and docs resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers.cli import REPO

PAGES = [
    REPO / "README.md",
    REPO / "benchmarks" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: `path/like/this.py` in backticks, under a folder of this repository
CODE_PATH = re.compile(
    r"`((?:flowengine|nodes|ui|tests|docs|flows|benchmarks|\.ci)/[\w./-]+?)(?:::\w+)?`"
)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            out.add(title.replace(" ", "-"))
    return out


def _broken(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here (no network)
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"link {target}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"anchor {target}")
    for path in CODE_PATH.findall(text):
        if "*" not in path and not (REPO / path.rstrip("/")).exists():
            broken.append(f"path `{path}`")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_and_paths_resolve(page: Path) -> None:
    assert _broken(page) == []


def test_a_stale_path_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See [x](missing.md), [y](#nope) and `flowengine/windows.py`.\n# Title\n")
    assert _broken(page) == ["link missing.md", "anchor #nope", "path `flowengine/windows.py`"]
