"""The pytest plugin (entry point ``pytest11``): ``pytest`` collects ``*.test.yaml`` files too.

Each case is one pytest item (``line3.test.yaml::raises within 10 s``), so ``-k``, ``-x``,
``--junitxml`` and pytest-xdist work as for any test; a failure shows the same readable diff
as ``flowengine test``. A test file with problems is a collection error listing them as
PATH:LINE:COL. ``--flowengine-update`` writes snapshots, as ``flowengine test --update``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowengine.flowtest.check import Case, load_suite
from flowengine.flowtest.load import is_test_file
from flowengine.registry import default_registry


class CaseFailed(Exception):
    """A case whose expectations did not hold (or that could not run): the text says why."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowengine", "flow tests (*.test.yaml)")
    group.addoption(
        "--flowengine-update",
        action="store_true",
        help="Write the snapshot files of flow tests from this run's output.",
    )
    group.addoption(
        "--flowengine-allow-code",
        action="store_true",
        help="Admit nodes that run Python from the flow file in flow tests.",
    )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if is_test_file(file_path):
        return FlowTestFile.from_parent(parent, path=file_path)
    return None


class FlowTestFile(pytest.File):
    """A ``*.test.yaml`` file: its cases, or a collection error with every problem."""

    def collect(self) -> Iterator[pytest.Item]:
        allow = bool(self.config.getoption("flowengine_allow_code", False))
        suite = load_suite(_relative(self.path), default_registry(), allow_code=allow)
        if suite.errors:
            raise self.CollectError("\n".join(str(p) for p in suite.errors))
        for case in suite.cases:
            yield FlowTestItem.from_parent(self, name=case.spec.name, case=case)


class FlowTestItem(pytest.Item):
    """One case of a test file."""

    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from flowengine.flowtest.report import failure_text
        from flowengine.flowtest.run import Options, run_case

        update = bool(self.config.getoption("flowengine_update", False))
        result = asyncio.run(run_case(self.case, Options(update=update)))
        if result.outcome == "skipped":
            pytest.skip(result.message)
        if result.outcome in ("failed", "error"):
            raise CaseFailed(failure_text(result))

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        if isinstance(excinfo.value, CaseFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name}::{self.name}"


def _relative(path: Path) -> Path:
    """``path`` relative to the working folder when under it (shorter messages)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
