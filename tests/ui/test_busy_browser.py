"""A busy flow does not lock the editor (issue 11, item 3) in headless Chromium: while a flow's
node spins on a core, the page loads again, a node's form opens, and Stop stops the flow."""

from __future__ import annotations

from pathlib import Path

from nicegui import app
from nicegui.testing import Screen
from selenium.webdriver import ActionChains
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

#: A node that keeps a core busy until the test drops ``release`` (or 60 s pass).
SPIN = """\
version: 1
nodes:
  tick:
    type: inject
    rows: [{{value: 1.0}}]
    wires: [spin]
  spin:
    type: python
    code: |
      def process(df):
          import pathlib, time
          folder = pathlib.Path({folder!r})
          (folder / "spinning").touch()
          end = time.monotonic() + 60
          while not (folder / "release").exists() and time.monotonic() < end:
              pass
          return df
    wires: [show]
  show:
    type: debug
layout:
  tick: {{x: 80, y: 80}}
  spin: {{x: 300, y: 80}}
  show: {{x: 520, y: 80}}
"""


def test_the_page_loads_and_forms_open_while_the_flow_spins(screen: Screen, tmp_path: Path) -> None:
    flow = tmp_path / "spin.yaml"
    flow.write_text(SPIN.format(folder=str(tmp_path)))
    editor = Editor(EditorConfig(flow, allow_code=True))
    app.on_shutdown(editor.shutdown)
    screen.ui_run_kwargs["root"] = root(editor)
    driver = screen.selenium
    try:
        screen.open("/")
        wait_until(lambda: (tmp_path / "spinning").exists(), 30, "the flow spinning")
        screen.open("/")  # a fresh page load while the node holds its core
        node = '[data-node-id="spin"]'
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, node), 20, "the canvas")
        ActionChains(driver).double_click(driver.find_element(By.CSS_SELECTOR, node)).perform()
        code = '[data-field="code"]'  # its form, built by the editor, while the flow spins
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, code), 20, "the node's form")
        assert not (tmp_path / "release").exists() and editor.host is not None
        assert editor.host.running
        buttons = driver.find_elements(By.XPATH, '//button[.//i[normalize-space()="stop"]]')
        assert buttons, "no Stop button"
    finally:
        (tmp_path / "release").touch()  # let the node return, so the flow drains
