"""The Tests tab in headless Chromium: open a flow with a test file beside it, run its cases
from the tab, see pass/fail with the diff, and the failing case's node outlined on the canvas."""

from __future__ import annotations

from pathlib import Path

from nicegui import app
from nicegui.testing import Screen
from selenium.webdriver.common.by import By

from flowengine.ui.app import Editor, EditorConfig, root
from tests.helpers.peers import wait_until
from tests.helpers.uiharness import (  # noqa: F401
    nicegui_chrome_options,
    nicegui_remove_all_screenshots,
    no_main_file,
    own_port,
    requires_chromium,
)

pytest_plugins = ["nicegui.testing.screen_plugin"]
pytestmark = requires_chromium

FLOW = """\
version: 1
nodes:
  calc:
    type: compute
    columns: {doubled: value * 2}
    wires: [hot]
  hot:
    type: filter
    query: "doubled > 4"
layout:
  calc: {x: 100, y: 100}
  hot: {x: 340, y: 100}
"""

CASES = """\
cases:
  - name: high readings pass
    target: hot
    input:
      - feed: hot
        rows: [{sensor: a, doubled: 3.0}, {sensor: b, doubled: 5.0}]
    expect:
      hot: {rows: [{sensor: b, doubled: 5.0}]}
  - name: calc doubles wrongly
    target: calc
    input:
      - feed: calc
        rows: [{sensor: a, value: 1.5}]
    expect:
      calc: {rows: [{sensor: a, value: 1.5, doubled: 4.0}]}
"""


def test_the_tests_tab_runs_cases_and_outlines_the_failing_node(
    screen: Screen, tmp_path: Path
) -> None:
    flow = tmp_path / "line.yaml"
    flow.write_text(FLOW)
    (tmp_path / "line.test.yaml").write_text(CASES)
    editor = Editor(EditorConfig(flow, run=False))
    app.on_shutdown(editor.shutdown)
    screen.ui_run_kwargs["root"] = root(editor)
    screen.open("/")
    driver = screen.selenium

    def node(node_id: str) -> object:
        return driver.find_element(By.CSS_SELECTOR, f'.fe-node[data-node-id="{node_id}"]')

    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '[data-node-id="calc"]'), 20, "calc")
    assert "fe-error" not in node("calc").get_attribute("class")

    tabs = driver.find_element(By.CSS_SELECTOR, ".fe-side-tabs .q-tabs__content")
    fits = "return arguments[0].scrollWidth <= arguments[0].clientWidth"
    assert driver.execute_script(fits, tabs), "the side tabs overflow: Tests is hidden"
    screen.click("Tests")
    screen.wait_for("calc doubles wrongly")
    screen.should_contain("high readings pass")
    driver.find_element(By.XPATH, '//button[.//span[normalize-space()="Run"]]').click()
    screen.wait_for("1 failed, 1 passed")
    screen.should_contain("calc: rows differ")  # the diff, under the failing case
    screen.should_contain("Tests (1 failed)")
    assert driver.execute_script(fits, tabs), "the side tabs overflow with the count"

    wait_until(lambda: "fe-error" in node("calc").get_attribute("class"), 10, "calc outlined")
    assert "test 'calc doubles wrongly' failed" in node("calc").get_attribute("title")
    assert "fe-error" not in node("hot").get_attribute("class")  # its case passed
