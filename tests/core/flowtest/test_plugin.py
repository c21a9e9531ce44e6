"""The pytest plugin: `pytest` collects *.test.yaml, one item per case, failures as the diff."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import flowengine.flowtest.plugin  # imported once, before pytester snapshots modules
import flowengine.flowtest.run  # noqa: F401
from tests.core.flowtest.conftest import FLOW

pytest_plugins = ["pytester"]

TESTS = """\
cases:
  - name: doubles
    target: scale
    input: [{feed: scale, rows: [{sensor: a, value: 6}]}]
    expect: {scale: {rows: [{sensor: a, value: 6, scaled: 12}]}}
  - name: wrong
    target: scale
    input: [{feed: scale, rows: [{sensor: a, value: 6}]}]
    expect: {scale: {rows: [{sensor: a, value: 6, scaled: 13}]}}
  - name: later
    skip: not written yet
    expect: {scale: {no_output: true}}
"""


def plugin_args() -> list[str]:
    """Load the plugin by name unless its entry point is installed (then pytest has it)."""
    installed = any(
        ep.value == "flowengine.flowtest.plugin" for ep in entry_points(group="pytest11")
    )
    if installed:
        return []
    return ["-p", "flowengine.flowtest.plugin", "-W", "ignore::pytest.PytestAssertRewriteWarning"]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", line=FLOW)
    pytester.makefile(".test.yaml", line=TESTS)
    return pytester


def test_collects_one_item_per_case(project):
    result = project.runpytest(*plugin_args(), "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["line.test.yaml::doubles", "line.test.yaml::wrong", "line.test.yaml::later"]
    )


def test_runs_cases_and_shows_the_diff(project):
    result = project.runpytest(*plugin_args(), "-rA")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*scale: rows differ*",
            "*1 row(s) differ in column(s): scaled*",
            "*0    scaled  13        12*",
            "SKIPPED*not written yet*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    only = project.runpytest(*plugin_args(), "-k", "doubles")
    only.assert_outcomes(passed=1, deselected=2)


def test_a_broken_test_file_is_a_located_collection_error(project):
    project.makefile(".test.yaml", broken="cases:\n  - name: a\n    expect: {x: {row_cnt: 1}}\n")
    (project.path / "broken.yaml").write_text(FLOW)
    result = project.runpytest(*plugin_args())
    result.assert_outcomes(errors=1)  # pytest stops at a collection error, as for a .py file
    result.stdout.fnmatch_lines(
        [
            "*broken.test.yaml:3:18: case 'a': unknown key 'expect.x.row_cnt' (did you mean 'row_count'?)*"
        ]
    )
