"""The whole editor in headless Chromium: open line3, drag a node in from the palette, wire it,
set a field, deploy, and see the file change on disk and a batch in the debug sidebar."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from nicegui import app
from nicegui.testing import Screen
from selenium.webdriver.common.by import By

from flowengine.ui.app import Editor, EditorConfig, root
from flowengine.ui.model import EditorModel
from tests.helpers.cli import REPO
from tests.helpers.peers import wait_until
from tests.helpers.uiharness import (  # noqa: F401
    centre,
    drag_path,
    nicegui_chrome_options,
    nicegui_remove_all_screenshots,
    no_main_file,
    own_port,
    requires_chromium,
)

pytest_plugins = ["nicegui.testing.screen_plugin"]
pytestmark = requires_chromium

#: HTML5 drag and drop as the browser does it: Selenium's mouse actions do not fire drag events.
DROP_JS = """
const [item, target, x, y] = arguments;
const data = new DataTransfer();
const at = {bubbles: true, cancelable: true, dataTransfer: data, clientX: x, clientY: y};
item.dispatchEvent(new DragEvent('dragstart', at));
target.dispatchEvent(new DragEvent('dragenter', at));
target.dispatchEvent(new DragEvent('dragover', at));
target.dispatchEvent(new DragEvent('drop', at));
item.dispatchEvent(new DragEvent('dragend', at));
return data.getData('application/x-flowengine-type');
"""


@pytest.fixture
def line3(tmp_path: Path) -> Path:
    """line3 and its model in a folder of their own (its outputs go to tmp_path/out)."""
    folder = tmp_path / "flows"
    if (REPO / "flows" / "models").is_dir():
        shutil.copytree(REPO / "flows" / "models", folder / "models")
    else:
        folder.mkdir()
    shutil.copy(REPO / "flows" / "line3.yaml", folder / "line3.yaml")
    return folder / "line3.yaml"


def test_edit_line3_end_to_end(screen: Screen, line3: Path) -> None:
    editor = Editor(EditorConfig(line3))
    app.on_shutdown(editor.shutdown)
    screen.ui_run_kwargs["root"] = root(editor)
    screen.open("/")
    driver = screen.selenium
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '[data-node-id="plc"]'), 20, "line3")
    wait_until(lambda: editor.host is not None and editor.host.running, 30, "line3 running")

    # drag a debug node in from the palette
    canvas = driver.find_element(By.CSS_SELECTOR, ".fe-canvas")
    item = driver.find_element(By.CSS_SELECTOR, '.palette-item[data-type="debug"]')
    plc_x, plc_y = centre(driver.find_element(By.CSS_SELECTOR, '[data-node-id="plc"]'))
    dropped = driver.execute_script(DROP_JS, item, canvas, plc_x + 40, plc_y + 160)
    assert dropped == "debug"
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, '[data-node-id="debug1"]'), 10, "debug1"
    )

    # wire plc's out port to it
    out = driver.find_element(
        By.CSS_SELECTOR, '[data-node-id="plc"] [data-port="out"][data-kind="out"]'
    )
    into = driver.find_element(
        By.CSS_SELECTOR, '[data-node-id="debug1"] [data-port="in"][data-kind="in"]'
    )
    (ax, ay), (bx, by) = centre(out), centre(into)
    drag_path(
        driver,
        canvas,
        (ax, ay),
        [(ax + (bx - ax) * i / 8, ay + (by - ay) * i / 8) for i in range(1, 9)],
    )
    key = "plc:out->debug1:in"
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, f'[data-wire-key="{key}"]'), 10, "the wire"
    )

    # set a field in its property form (opened by the drop)
    rows = driver.find_element(By.CSS_SELECTOR, '[data-field="rows"] input')
    rows.clear()
    rows.send_keys("2")
    driver.find_element(By.CSS_SELECTOR, '[data-field="columns"]').click()  # blur: applies it
    wait_until(lambda: editor.model.form_values("debug1").get("rows") == 2, 10, "rows = 2")

    # deploy: the file changes on disk, and the running flow gets the new node
    before = line3.read_text()
    screen.click("Deploy")
    wait_until(lambda: line3.read_text() != before, 15, "the saved file")
    text = line3.read_text()
    assert "  debug1:\n    type: debug\n    rows: 2\n" in text
    saved = EditorModel.open(line3).flow()
    assert "debug1" in [t.node for t in saved.nodes["plc"].wires["out"]]
    assert before.splitlines()[0] in text.splitlines()  # comments kept
    wait_until(lambda: "debug1" in {s["id"] for s in editor.host.snapshot()}, 15, "debug1 running")

    # a batch from it in the debug sidebar
    screen.click("Debug")
    newest = '.fe-msg[data-node="debug1"]'  # older messages scroll out of view at the top
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, newest), 15, "a debug1 message")

    # the toolbar's export menu opens on a click: the flow or the selection, YAML or JSON
    driver.find_element(By.XPATH, '//button[.//i[text()="file_download"]]').click()
    for item in ("Flow as YAML", "Flow as JSON", "Selection as YAML", "Selection as JSON"):
        screen.wait_for(item)
