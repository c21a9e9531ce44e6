"""The debug sidebar and the Info tab in headless Chromium: a debug node's `columns` decide what
its messages show, with no horizontal scroll; a click on a message selects its node; the Info
tab shows the selected filter node's documentation."""

from __future__ import annotations

from pathlib import Path

from nicegui import app
from nicegui.testing import Screen
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from flowengine.ui.app import Editor, EditorConfig, root
from tests.helpers.peers import wait_until
from tests.helpers.samples import SAMPLE
from tests.helpers.uiharness import (  # noqa: F401
    nicegui_chrome_options,
    nicegui_remove_all_screenshots,
    no_main_file,
    own_port,
    requires_chromium,
)

pytest_plugins = ["nicegui.testing.screen_plugin"]
pytestmark = requires_chromium

#: line3's alert rows (wide: ten columns and a long message) into line3's `console` debug node.
ALERTS = """\
version: 1
nodes:
  alert:
    type: inject
    interval: 0.3
    rows:
      - {event: raise, severity: critical, line: "3", key: line=3, level: 0.95,
         value: 0.9731, threshold: 0.95, held_s: 2.0, episode: 1,
         message: "Line 3: defect probability 0.97 above 0.95 for 2 s (critical)"}
    wires: [console]
  console:
    type: debug
    name: Show alerts
    rows: 3
    columns: [event, message]
layout:
  alert: {x: 80, y: 80}
  console: {x: 320, y: 80}
"""

SCROLLS = """
const el = arguments[0];
const out = [];
for (let e = el; e && e !== document.body; e = e.parentElement)
  if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'hidden')
    out.push(e.className);
for (const e of el.querySelectorAll('*'))
  if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'hidden')
    out.push(e.className);
return out;
"""


def start(screen: Screen, editor: Editor) -> None:
    app.on_shutdown(editor.shutdown)
    screen.ui_run_kwargs["root"] = root(editor)
    screen.open("/")


def side_tab(screen: Screen, label: str) -> None:
    """Click a tab of the right sidebar by its label or icon name; returns once its panel has
    slid in (mid-slide, it sticks out of the sidebar)."""
    driver = screen.selenium
    driver.find_element(
        By.XPATH, f'//div[contains(@class,"q-tab ")][.//*[normalize-space()="{label}"]]'
    ).click()
    sliding = ".q-tab-panels [class*='q-transition--']"
    wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, sliding), 10, "the tab shown")


def right_edge(element: WebElement) -> float:
    return element.parent.execute_script(
        "return arguments[0].getBoundingClientRect().right;", element
    )


def test_debug_messages_show_the_node_columns_unscrolled_and_select_it(
    screen: Screen, tmp_path: Path
) -> None:
    flow = tmp_path / "alerts.yaml"
    flow.write_text(ALERTS)
    editor = Editor(EditorConfig(flow))
    start(screen, editor)
    driver = screen.selenium
    wait_until(lambda: editor.host is not None and editor.host.running, 30, "running")
    side_tab(screen, "Debug")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".fe-msg"), 15, "a message")
    message = driver.find_elements(By.CSS_SELECTOR, ".fe-msg")[-1]  # the newest, in view
    text = message.text
    assert "event: raise" in text and "message: Line 3: defect probability" in text
    assert "severity" not in text and "threshold" not in text  # not in the node's columns
    panel = driver.find_element(By.CSS_SELECTOR, ".fe-debug-scroll")
    assert driver.execute_script(SCROLLS, panel) == []  # no horizontal scroll anywhere
    assert right_edge(message) <= right_edge(panel) + 1  # the message column is on screen
    words = message.find_elements(By.XPATH, './/span[text()="message"]')
    assert words and right_edge(words[0]) <= right_edge(panel)

    message.find_element(By.CSS_SELECTOR, ".fe-msg-body").click()
    node = driver.find_element(By.CSS_SELECTOR, '[data-node-id="console"]')
    wait_until(lambda: "fe-selected" in (node.get_attribute("class") or ""), 10, "selected")
    assert editor.model is not None
    screen.should_contain("Show alerts")  # its properties, next to the debug list


def test_info_tab_shows_the_selected_filter_docs(screen: Screen, tmp_path: Path) -> None:
    flow = tmp_path / "line3.yaml"
    flow.write_text(SAMPLE)
    editor = Editor(EditorConfig(flow, run=False))
    start(screen, editor)
    driver = screen.selenium
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, '[data-node-id="furnace"]'), 20, "canvas"
    )
    side_tab(screen, "info_outline")
    screen.wait_for("Select a node")
    driver.find_element(By.CSS_SELECTOR, '[data-node-id="furnace"] .fe-label').click()
    screen.wait_for("Keep matching rows on")
    screen.should_contain("Furnace temperature only")
    docs = driver.find_element(By.CSS_SELECTOR, ".fe-info-docs")
    assert "A DataFrame.query expression" in docs.text  # the settings table, as in nodes.md
    assert driver.execute_script(SCROLLS, docs) == []
