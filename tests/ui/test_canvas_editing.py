"""The canvas basics a Node-RED user expects (issue 11, items 7 and 8), in headless Chromium:
quiet error ports, clipped text with tooltips, no re-centre on the first drop, context menu,
Ctrl+X/Ctrl+D, arrow-key nudge, splice onto a wire, Ctrl+F, groups, icons, node buttons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nicegui import app, ui
from nicegui.testing import Screen
from selenium.webdriver import ActionChains, Keys
from selenium.webdriver.common.by import By

from flowengine.ui.app import Editor, EditorConfig, root
from flowengine.ui.canvas import FlowCanvas
from tests.helpers.peers import free_port, wait_until
from tests.helpers.uiharness import (  # noqa: F401
    box,
    centre,
    drag_path,
    in_loop,
    nicegui_chrome_options,
    nicegui_remove_all_screenshots,
    no_main_file,
    requires_chromium,
)
from tests.ui.test_canvas import CanvasPage, node, wire

pytest_plugins = ["nicegui.testing.screen_plugin"]
pytestmark = requires_chromium

NODES = [
    {**node("tick", 100, 100, [], ["out", "error"]), "type": "inject"},
    node("calc", 400, 100, ["in"], ["out", "error"]),
    {**node("show", 700, 100, ["in"], ["error"]), "type": "debug"},
    node("free", 400, 300, ["in"], ["out", "error"]),
    {**node("route", 100, 300, ["in"], ["hot", "cold", "error"]), "type": "switch"},
]
WIRES = [wire("tick", "out", "calc"), wire("calc", "out", "show")]
KEY = WIRES[0]["key"]


@pytest.fixture
def page(screen: Screen) -> CanvasPage:
    state = CanvasPage(screen)

    @ui.page("/")
    def index() -> None:
        canvas = FlowCanvas(on_change=state.ops.append).style("width: 1000px; height: 640px")
        canvas.set_flow(NODES, WIRES)
        state.canvas = canvas

    screen.open("/")
    wait_until(lambda: len(state.driver.find_elements(By.CSS_SELECTOR, "[data-node-id]")) == 5)
    return state


def opacity(page: CanvasPage, id: str, port: str) -> str:
    return page.port(id, port, "out").value_of_css_property("opacity")


def test_error_port_shows_only_when_wired_or_hovered(page: CanvasPage) -> None:
    assert opacity(page, "calc", "error") == "0"  # not wired: not drawn as if failing
    ActionChains(page.driver).move_to_element(page.node("calc")).perform()
    assert opacity(page, "calc", "error") == "1"  # hovering shows it, to start a wire
    in_loop(page.canvas.set_flow, NODES, [*WIRES, wire("calc", "error", "show")])
    ActionChains(page.driver).move_to_element(page.node("free")).perform()
    wait_until(lambda: opacity(page, "calc", "error") == "1", what="the wired error port")
    assert opacity(page, "tick", "error") == "0"
    # port names: on hover for one-port sides, always beside the ports of a multi-port side
    label = "[data-node-id=route] [data-port=hot] .fe-port-label"
    assert page.driver.find_element(By.CSS_SELECTOR, label).text == "hot"
    calc_out = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=calc] [data-port=out]")
    assert not calc_out.find_element(By.CSS_SELECTOR, ".fe-port-label").is_displayed()
    ActionChains(page.driver).move_to_element(calc_out).perform()
    assert calc_out.find_element(By.CSS_SELECTOR, ".fe-port-label").text == "out"


def test_long_status_and_label_are_clipped_with_a_tooltip(page: CanvasPage) -> None:
    long = "retrying: connection refused by opc.tcp://plc-line3.factory.example:4840 " * 3
    in_loop(page.canvas.set_status, {"calc": {"color": "red", "text": long, "rate": 0.0}})
    status = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=calc] .fe-status")
    wait_until(lambda: status.get_attribute("title") == long, what="the status tooltip")
    calc = box(page.node("calc"))
    assert box(status)["x"] + box(status)["width"] <= calc["x"] + calc["width"]
    name = "Furnace temperature deviation from the setpoint, line 3"
    in_loop(page.canvas.set_flow, [{**NODES[1], "label": name}], [])
    label = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=calc] .fe-label")
    wait_until(lambda: label.get_attribute("title") == name, what="the label tooltip")
    assert page.js("return arguments[0].scrollWidth > arguments[0].clientWidth;", label)


def test_context_menu_sends_each_action(page: CanvasPage) -> None:
    def menu(target: object, item: str) -> None:
        ActionChains(page.driver).context_click(target).perform()
        page.driver.find_element(By.CSS_SELECTOR, f'.fe-menu [data-menu="{item}"]').click()

    for item in ("edit", "cut", "copy", "duplicate", "delete", "disable", "group"):
        menu(page.node("calc"), item)
    menu(page.node("calc"), "make_subflow")
    menu(page.node("show"), "help")
    menu(page.root(), "paste")
    ops = [o for o in page.settle() if o["op"] != "select"]
    assert [o["op"] for o in ops] == [
        "open",
        "cut",
        "copy",
        "duplicate",
        "delete",
        "disable",
        "group",
        "make_subflow",
        "help",
        "paste",
    ]
    assert all(o["nodes"] == ["calc"] for o in ops[1:8])
    assert ops[5]["disabled"] is True and ops[8]["type"] == "debug"
    assert not page.driver.find_element(By.CSS_SELECTOR, ".fe-menu").is_displayed()


def test_ctrl_x_ctrl_d_and_enter(page: CanvasPage) -> None:
    page.node("calc").click()
    page.keys(Keys.CONTROL, "d")
    page.keys(Keys.CONTROL, "x")
    page.keys(Keys.ENTER)
    assert [o for o in page.settle() if o["op"] != "select"] == [
        {"op": "duplicate", "nodes": ["calc"]},
        {"op": "cut", "nodes": ["calc"]},
        {"op": "open", "node": "calc"},
    ]


def test_arrow_keys_nudge_the_selection(page: CanvasPage) -> None:
    page.node("calc").click()
    page.keys(Keys.ARROW_RIGHT)
    page.keys(Keys.SHIFT, Keys.ARROW_DOWN)
    assert page.of("move") == [
        {"op": "move", "positions": {"calc": {"x": 401, "y": 100}}},
        {"op": "move", "positions": {"calc": {"x": 401, "y": 120}}},
    ]
    assert page.node("calc").value_of_css_property("transform") == "matrix(1, 0, 0, 1, 401, 120)"


def test_dropping_a_node_onto_a_wire_splices_it(page: CanvasPage) -> None:
    line = page.driver.find_element(By.CSS_SELECTOR, f'[data-wire-key="{KEY}"]')
    mid = page.js(
        "const p = arguments[0].getPointAtLength(arguments[0].getTotalLength() / 2);"
        "const m = arguments[0].getScreenCTM(); return [p.x * m.a + m.e, p.y * m.d + m.f];",
        line,
    )
    x, y = centre(page.node("free"))
    steps = [(x + (mid[0] - x) * i / 6, y + (mid[1] - y) * i / 6) for i in range(1, 7)]
    drag_path(page.driver, page.root(), (x, y), steps)
    assert page.of("splice") == [{"op": "splice", "node": "free", "wire": KEY}]
    # from the palette too: the drop names the wire under it (Python splices when ports fit)
    in_loop(page.canvas.set_flow, NODES, WIRES)  # Python's answer: "free" back where it was
    wait_until(lambda: centre(page.node("free")) == (x, y), what="free back in place")
    page.js(
        """const dt = new DataTransfer();
        dt.setData("application/x-flowengine-type", "filter");
        const at = {bubbles: true, cancelable: true, dataTransfer: dt, clientX: arguments[0], clientY: arguments[1]};
        c.$el.dispatchEvent(new DragEvent("drop", at));""",
        *mid,
    )
    (drop,) = page.of("drop")
    assert drop["wire"] == KEY


def test_ctrl_f_finds_and_pans_to_nodes(page: CanvasPage) -> None:
    page.click_empty()
    page.keys(Keys.CONTROL, "f")
    query = page.driver.find_element(By.CSS_SELECTOR, ".fe-search input")
    assert query.is_displayed() and page.driver.switch_to.active_element == query
    query.send_keys("debug")  # by type
    assert page.of("select")[-1] == {"op": "select", "nodes": ["show"], "wires": []}
    root, show = box(page.root()), box(page.node("show"))
    assert abs(show["x"] + show["width"] / 2 - (root["x"] + root["width"] / 2)) <= 1
    query.clear()
    query.send_keys("COMPUTE")  # by type, any case: Enter goes to the next
    assert page.of("select")[-1]["nodes"] == ["calc", "free"]
    assert page.driver.find_element(By.CSS_SELECTOR, ".fe-hits").text == "1/2"
    query.send_keys(Keys.ENTER)
    assert page.driver.find_element(By.CSS_SELECTOR, ".fe-hits").text == "2/2"
    query.send_keys(Keys.ESCAPE)
    assert not query.is_displayed()


def test_fire_button_and_debug_toggle_send_events(page: CanvasPage) -> None:
    fired: list[dict] = []
    page.canvas.on_action("fire", fired.append)
    fire = page.driver.find_elements(By.CSS_SELECTOR, ".fe-fire")
    toggles = page.driver.find_elements(By.CSS_SELECTOR, ".fe-toggle")
    assert [e.find_element(By.XPATH, "..").get_attribute("data-node-id") for e in fire] == ["tick"]
    assert [e.find_element(By.XPATH, "..").get_attribute("data-node-id") for e in toggles] == [
        "show"
    ]
    fire[0].click()
    toggles[0].click()
    toggles[0].click()
    wait_until(lambda: len(page.ops) == 2, what="the toggle events")
    assert fired == [{"op": "fire", "id": "tick"}]  # to its handler, not to on_change
    assert page.ops == [
        {"op": "debug_toggle", "id": "show", "on": False},
        {"op": "debug_toggle", "id": "show", "on": True},
    ]
    in_loop(page.canvas.set_toggles, {"show": False})
    wait_until(lambda: "fe-on" not in toggles[0].get_attribute("class"))


# ---- the whole editor ------------------------------------------------------------------------
FLOW = """\
version: 1
name: small
nodes:
  tick:
    type: inject
    wires: [keep]
  keep:
    type: filter
    query: value > 0
    wires: [show]
  show:
    type: debug
layout:
  tick: {x: 80, y: 100}
  keep: {x: 300, y: 100}
  show: {x: 520, y: 100}
"""


@pytest.fixture
def editor_page(screen: Screen, tmp_path: Path) -> Iterator[tuple[Screen, Editor, Path]]:
    fixed, Screen.PORT = Screen.PORT, free_port()
    path = tmp_path / "small.yaml"
    path.write_text(FLOW)
    editor = Editor(EditorConfig(path, run=False))
    app.on_shutdown(editor.shutdown)
    screen.ui_run_kwargs["root"] = root(editor)
    yield screen, editor, path
    Screen.PORT = fixed


def test_group_moves_as_one_and_is_saved_in_layout(
    editor_page: tuple[Screen, Editor, Path],
) -> None:
    screen, editor, path = editor_page
    screen.open("/")
    driver = screen.selenium
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '[data-node-id="keep"]'), 20)
    keep = driver.find_element(By.CSS_SELECTOR, '[data-node-id="keep"]')
    keep.click()
    ActionChains(driver).key_down(Keys.SHIFT).click(
        driver.find_element(By.CSS_SELECTOR, '[data-node-id="show"]')
    ).key_up(Keys.SHIFT).perform()
    ActionChains(driver).context_click(keep).perform()
    driver.find_element(By.CSS_SELECTOR, '.fe-menu [data-menu="group"]').click()
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '[data-group-id="group1"]'))
    group = driver.find_element(By.CSS_SELECTOR, '[data-group-id="group1"]')
    label = group.find_element(By.CSS_SELECTOR, ".fe-group-label")
    x, y = centre(label)
    canvas = driver.find_element(By.CSS_SELECTOR, ".fe-canvas")
    drag_path(driver, canvas, (x, y), [(x + 20 * i, y + 20 * i) for i in range(1, 5)])
    wait_until(lambda: editor.model.position("show") == (600.0, 180.0), what="the group moved")
    assert editor.model.position("keep") == (380.0, 180.0)
    assert editor.model.position("tick") == (80.0, 100.0)
    # a double click on the group renames it
    ActionChains(driver).double_click(label).perform()
    name = driver.find_element(By.CSS_SELECTOR, ".q-dialog input")
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys("Filter and show", Keys.ENTER)
    wait_until(lambda: label.text == "Filter and show", what="the renamed group")
    editor.model.save()
    text = path.read_text()
    assert "  group1: {name: Filter and show, color: '#ffe0b2', nodes: [keep, show]}\n" in text
    assert "  keep: {x: 380, y: 180}\n" in text
    ActionChains(driver).context_click(label).perform()
    driver.find_element(By.CSS_SELECTOR, '.fe-menu [data-menu="ungroup"]').click()
    wait_until(lambda: not driver.find_elements(By.CSS_SELECTOR, "[data-group-id]"), what="ungroup")
    assert editor.model.group_views() == []


def test_icons_in_palette_and_on_nodes_and_no_recentre_on_first_drop(
    editor_page: tuple[Screen, Editor, Path],
) -> None:
    screen, _, path = editor_page
    path.write_text("version: 1\nname: empty\nnodes: {}\nlayout: {}\n")  # before it opens
    screen.open("/")
    driver = screen.selenium
    item = driver.find_element(By.CSS_SELECTOR, '.palette-item[data-type="inject"]')
    assert item.find_element(By.CSS_SELECTOR, ".q-icon").text == "touch_app"
    canvas = driver.find_element(By.CSS_SELECTOR, ".fe-canvas")
    view = "return getElement(arguments[0]).viewState();"
    before = driver.execute_script(view, canvas)
    r = box(canvas)
    for i, kind in enumerate(("inject", "debug")):
        driver.execute_script(
            """const [item, target, x, y] = arguments;
            const data = new DataTransfer();
            const at = {bubbles: true, cancelable: true, dataTransfer: data, clientX: x, clientY: y};
            item.dispatchEvent(new DragEvent('dragstart', at));
            target.dispatchEvent(new DragEvent('dragover', at));
            target.dispatchEvent(new DragEvent('drop', at));""",
            driver.find_element(By.CSS_SELECTOR, f'.palette-item[data-type="{kind}"]'),
            canvas,
            r["x"] + 100 + 300 * i,
            r["y"] + 100,
        )
        wait_until(
            lambda n=i + 1: len(driver.find_elements(By.CSS_SELECTOR, "[data-node-id]")) == n
        )
    assert driver.execute_script(view, canvas) == before  # the view stayed where the user was
    node = driver.find_element(By.CSS_SELECTOR, '[data-node-id="debug1"]')
    assert box(node)["x"] - r["x"] == pytest.approx(400, abs=20)  # where it was dropped
    # icons render as glyphs (a name the font lacks would render as a wide word)
    icon = driver.find_element(By.CSS_SELECTOR, '[data-node-id="inject1"] .fe-icon')
    assert icon.text == "touch_app" and box(icon)["width"] <= 24
