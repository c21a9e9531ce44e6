"""A small flow and a way to write test files beside it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

FLOW = """\
version: 1
name: scale and check
nodes:
  src:
    type: inject
    rows: [{sensor: a, value: 1.0}]
    wires: [scale]
  scale:
    type: compute
    columns: {scaled: "value * ${FACTOR:-2}"}
    wires: [high]
  high:
    type: filter
    query: scaled > 10
    wires: [out]
  out:
    type: debug
"""


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    (tmp_path / "line.yaml").write_text(FLOW, encoding="utf-8")
    return tmp_path


@pytest.fixture
def write_test(flow_dir: Path) -> Callable[..., Path]:
    """Write a test file (dedented) beside the flow; returns its path."""

    def write(text: str, name: str = "line.test.yaml") -> Path:
        path = flow_dir / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
