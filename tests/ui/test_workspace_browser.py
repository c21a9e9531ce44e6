"""The editor keeps every edit (issue 11, items 1 and 2) in headless Chromium: a field being typed
in is committed by Deploy and by Enter; two tabs on two flows of a folder each deploy their own
file while both flows run; a file changed on disk is never overwritten without asking; Stop and
Start per flow."""

from __future__ import annotations

from pathlib import Path

from nicegui import app
from nicegui.testing import Screen
from selenium.webdriver import ActionChains, Keys
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

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
  src:
    type: inject
    interval: 0.2
    rows: [{{value: 1.0}}]
    wires: [hot]
  hot:
    type: filter
    query: value > {limit}
    wires: [show]
  show:
    type: debug
    rows: 3
layout:
  src: {{x: 80, y: 80}}
  hot: {{x: 300, y: 80}}
  show: {{x: 520, y: 80}}
"""


def serve(screen: Screen, editor: Editor) -> None:
    app.on_shutdown(editor.shutdown)
    screen.ui_run_kwargs["root"] = root(editor)


def open_node(screen: Screen, node: str) -> None:
    """Double-click ``node`` on the canvas: its form opens in the sidebar."""
    driver = screen.selenium
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f'[data-node-id="{node}"]'), 20, node)
    ActionChains(driver).double_click(
        driver.find_element(By.CSS_SELECTOR, f'[data-node-id="{node}"]')
    ).perform()


def field(screen: Screen, name: str) -> WebElement:
    """The input (or textarea) of the property form's field ``name``."""
    css = f'[data-field="{name}"] input, [data-field="{name}"] textarea'
    wait_until(lambda: screen.selenium.find_elements(By.CSS_SELECTOR, css), 10, name)
    return screen.selenium.find_element(By.CSS_SELECTOR, css)


def test_deploy_commits_the_field_being_typed_in_and_enter_commits(
    screen: Screen, tmp_path: Path
) -> None:
    flow = tmp_path / "hot.yaml"
    flow.write_text(FLOW.format(limit=3))
    editor = Editor(EditorConfig(flow, run=False))
    serve(screen, editor)
    screen.open("/")
    open_node(screen, "hot")
    query = field(screen, "query")
    query.send_keys(Keys.END, "0")  # value > 30, still focused
    screen.click("Deploy")  # without leaving the field first
    wait_until(lambda: "query: value > 30\n" in flow.read_text(), 15, "the typed query saved")
    assert not editor.model.dirty

    open_node(screen, "show")
    rows = field(screen, "rows")
    rows.send_keys(Keys.END, "0", Keys.ENTER)  # 30, committed by Enter, still focused
    wait_until(lambda: editor.model.form_values("show").get("rows") == 30, 10, "rows = 30")


def press(screen: Screen, icon: str) -> None:
    """Click the toolbar button with ``icon`` once it is enabled (it follows the run state)."""
    xpath = f'//button[.//i[text()="{icon}"]]'
    driver = screen.selenium
    wait_until(lambda: driver.find_element(By.XPATH, xpath).is_enabled(), 15, f"{icon} enabled")
    driver.find_element(By.XPATH, xpath).click()


def running(editor: Editor, path: Path) -> bool:
    entry = editor.open_flows.get(path.resolve())
    return entry is not None and entry.running


def test_two_tabs_on_two_flows_each_deploy_their_own_file_and_run_on_their_own(
    screen: Screen, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(FLOW.format(limit=1))
    b.write_text(FLOW.format(limit=2))
    editor = Editor(EditorConfig(tmp_path))
    serve(screen, editor)
    driver = screen.selenium
    screen.open("/edit/a.yaml")
    tab_a = driver.current_window_handle
    open_node(screen, "hot")
    field(screen, "query").send_keys(Keys.END, "1")  # a: value > 11, not applied yet
    wait_until(lambda: running(editor, a), 20, "a running")

    driver.switch_to.new_window("tab")  # tab B opens b.yaml meanwhile
    screen.open("/edit/b.yaml")
    open_node(screen, "hot")
    field(screen, "query").send_keys(Keys.END, "2")  # b: value > 22, not applied yet
    wait_until(lambda: running(editor, b), 20, "b running")
    assert running(editor, a), "opening b stopped a"

    driver.switch_to.window(tab_a)
    screen.click("Deploy")  # a's edit, into a's file
    wait_until(lambda: "query: value > 11\n" in a.read_text(), 15, "a's edit in a.yaml")
    assert b.read_text() == FLOW.format(limit=2)  # b untouched, its edit still unsaved
    screen.should_contain("b.yaml")  # b is a tab of this page's flow strip now

    driver.switch_to.window(driver.window_handles[-1])
    screen.click("Deploy")
    wait_until(lambda: "query: value > 22\n" in b.read_text(), 15, "b's edit in b.yaml")
    assert "query: value > 11\n" in a.read_text()
    assert running(editor, a) and running(editor, b)

    # Stop and Start in tab B act on b only
    press(screen, "stop")
    wait_until(lambda: not running(editor, b), 15, "b stopped")
    screen.should_contain("stopped")
    assert running(editor, a)
    press(screen, "play_arrow")
    wait_until(lambda: running(editor, b), 15, "b running again")
    assert running(editor, a)


def test_a_file_changed_on_disk_is_not_overwritten_without_asking(
    screen: Screen, tmp_path: Path
) -> None:
    flow = tmp_path / "hot.yaml"
    flow.write_text(FLOW.format(limit=3))
    editor = Editor(EditorConfig(flow, run=False))
    serve(screen, editor)
    screen.open("/")
    open_node(screen, "hot")
    field(screen, "query").send_keys(Keys.END, "3", Keys.TAB)  # mine: value > 33
    wait_until(lambda: editor.model.dirty, 10, "my edit applied")
    theirs = FLOW.format(limit=4)
    flow.write_text(theirs)  # someone else saves meanwhile
    screen.click("Deploy")
    screen.should_contain("hot.yaml changed on disk")  # the dialog asks
    assert flow.read_text() == theirs
    driver = screen.selenium
    in_dialog = '//div[contains(@class, "q-dialog")]//button[.//span[text()="Keep both"]]'
    wait_until(lambda: driver.find_elements(By.XPATH, in_dialog), 10, "the dialog's buttons")
    driver.find_element(By.XPATH, in_dialog).click()
    mine = tmp_path / "hot-mine.yaml"
    wait_until(lambda: mine.exists() and "value > 33" in mine.read_text(), 10, "my copy")
    assert "query: value > 33\n" in mine.read_text()
    assert flow.read_text() == theirs
    wait_until(lambda: not editor.model.dirty, 10, "theirs reloaded")
    assert "query: value > 4\n" in editor.model.text
