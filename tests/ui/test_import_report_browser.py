"""Importing a Node-RED export in the browser (issue 11, item 5): one report dialog with the
text `flowengine import` prints (not a sticky toast per node), and the nodes that behave
differently outlined on the canvas with the reason."""

from __future__ import annotations

from pathlib import Path

from nicegui import app
from nicegui.testing import Screen
from selenium.webdriver.common.by import By

from flowengine.nodes.nodered.convert import import_nodered, report
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
TASMOTA = Path(__file__).resolve().parents[1] / "data" / "nodered" / "tasmota.json"


def test_node_red_import_shows_one_report_and_marks_the_nodes(
    screen: Screen, tmp_path: Path
) -> None:
    flow = tmp_path / "home.yaml"
    flow.write_text(SAMPLE)
    editor = Editor(EditorConfig(flow, run=False))
    app.on_shutdown(editor.shutdown)
    screen.ui_run_kwargs["root"] = root(editor)
    screen.open("/")
    driver = screen.selenium
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".fe-canvas"), 20, "the editor")
    driver.find_element(By.XPATH, '//button[.//i[text()="file_upload"]]').click()
    screen.wait_for("Import nodes")
    driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(TASMOTA))

    screen.wait_for("Node-RED import report")
    expected = report(import_nodered(TASMOTA.read_text()), "tasmota.json").splitlines()[0]
    screen.wait_for(expected)  # the CLI's words
    assert "plug_on" not in expected
    assert driver.find_elements(By.CSS_SELECTOR, ".q-notification") == []  # no toast pile

    assert editor.model is not None
    named = {str(raw.get("name")): node_id for node_id, raw in editor.model.nodes.items()}
    plug_on = named["Plug ON"]
    screen.wait_for(f"{plug_on} (was inject 'Plug ON'):")  # under its id on the canvas
    node = f'[data-node-id="{plug_on}"].fe-error'
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, node), 10, "Plug ON outlined")
    assert "click-only:" in (
        driver.find_element(By.CSS_SELECTOR, node).get_attribute("title") or ""
    )
    unchanged = f'[data-node-id="{named["Power W"]}"]'  # a debug node: behaves the same
    assert "fe-error" not in (
        driver.find_element(By.CSS_SELECTOR, unchanged).get_attribute("class") or ""
    )
