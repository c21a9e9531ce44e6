"""FlowCanvas in a real headless Chromium (NiceGUI's Screen fixture): gestures become `change`
intents for Python, Python's status/fill/selection patches reach the DOM, 500 nodes stay cheap."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import Screen
from selenium.webdriver import ActionChains, Keys
from selenium.webdriver.common.actions.mouse_button import MouseButton
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from flowengine.ui.canvas import FlowCanvas, NodeView, WireView, wire_key
from tests.helpers.peers import wait_until
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

pytest_plugins = ["nicegui.testing.screen_plugin"]
pytestmark = requires_chromium


def node(id: str, x: float, y: float, inputs: list[str], outputs: list[str]) -> NodeView:
    return {
        "id": id,
        "type": "compute",
        "label": id,
        "x": x,
        "y": y,
        "inputs": inputs,
        "outputs": outputs,
        "color": "#e2d96e",
    }


def wire(source: str, port: str, target: str, target_port: str = "in") -> WireView:
    key = wire_key(source, port, target, target_port)
    return {
        "key": key,
        "source": source,
        "port": port,
        "target": target,
        "target_port": target_port,
    }


NODES = [
    node("src", 100, 100, [], ["out", "error"]),
    node("calc", 400, 100, ["in"], ["out", "error"]),
    node("sink", 400, 300, ["in"], ["error"]),
]
WIRES = [wire("src", "out", "calc")]
KEY = WIRES[0]["key"]


class CanvasPage:
    """The test page: one canvas whose `change` events land in `ops`."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.driver = screen.selenium
        self.ops: list[dict] = []
        self.canvas: FlowCanvas

    def js(self, code: str, *args: Any) -> Any:
        """Run code with `c` bound to the canvas component."""
        return self.driver.execute_script(f"const c = getElement({self.canvas.id}); {code}", *args)

    def root(self) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, ".fe-canvas")

    def node(self, id: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, f'[data-node-id="{id}"]')

    def port(self, id: str, port: str, kind: str) -> WebElement:
        css = f'[data-node-id="{id}"] [data-port="{port}"][data-kind="{kind}"]'
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def settle(self) -> list[dict]:
        """Wait until Python has every event the browser sent (one socket keeps their order)."""
        sent = self.js("return c.sentCount();")
        wait_until(lambda: len(self.ops) >= sent, timeout=10, what=f"{sent} change events")
        assert len(self.ops) == sent
        return self.ops

    def of(self, op: str) -> list[dict]:
        return [o for o in self.settle() if o["op"] == op]

    def keys(self, *combo: str) -> None:
        """Press a key combination (modifiers first) on whatever has focus."""
        actions = ActionChains(self.driver)
        for key in combo[:-1]:
            actions.key_down(key)
        actions.send_keys(combo[-1])
        for key in reversed(combo[:-1]):
            actions.key_up(key)
        actions.perform()

    def click_empty(self) -> None:
        """Click the canvas where there is no node (its top-left corner)."""
        ActionChains(self.driver).move_to_element_with_offset(
            self.root(), -480, -300
        ).click().perform()


@pytest.fixture
def page(screen: Screen) -> CanvasPage:
    state = CanvasPage(screen)

    @ui.page("/")
    def index() -> None:
        ui.input("name").props("data-testid=name")
        canvas = FlowCanvas(on_change=state.ops.append).style("width: 1000px; height: 640px")
        canvas.set_flow(NODES, WIRES)
        state.canvas = canvas

    screen.open("/")
    wait_until(lambda: len(state.driver.find_elements(By.CSS_SELECTOR, "[data-node-id]")) == 3)
    assert state.js("return c.viewState().k;") == 1  # the first flow is fitted, never above 100 %
    return state


def test_drag_sends_one_snapped_move(page: CanvasPage) -> None:
    calc = page.node("calc")
    x, y = centre(calc)
    drag_path(page.driver, page.root(), (x, y), [(x + 9.3 * i, y + 4.1 * i) for i in range(1, 11)])
    moves = page.of("move")
    assert moves == [{"op": "move", "positions": {"calc": {"x": 500, "y": 140}}}]
    assert calc.value_of_css_property("transform") == "matrix(1, 0, 0, 1, 500, 140)"
    assert page.canvas.selection == (["calc"], [])
    # the wire follows its node: it now ends at calc's input port
    d = page.driver.find_element(By.CSS_SELECTOR, f'[data-wire-key="{KEY}"]').get_attribute("d")
    assert d.endswith(" 500 160")  # calc's only input sits mid-height of its 40 px body
    # Python keeps the moved position, so a re-render shows what the browser shows
    assert page.canvas.props["flow"]["nodes"][1]["x"] == 500


def test_drag_multi_selection_moves_all(page: CanvasPage) -> None:
    in_loop(page.canvas.set_selection, ["src", "calc"], [])
    wait_until(lambda: "fe-selected" in page.node("src").get_attribute("class"))
    src = page.node("src")
    x, y = centre(src)
    drag_path(page.driver, page.root(), (x, y), [(x + 20 * i, y + 20 * i) for i in range(1, 5)])
    (move,) = page.of("move")
    assert move["positions"] == {"src": {"x": 180, "y": 180}, "calc": {"x": 480, "y": 180}}
    assert page.of("select") == []  # pressing on a selected node keeps the selection


def test_port_to_port_sends_wire(page: CanvasPage) -> None:
    start = page.port("src", "error", "out")
    end = page.port("sink", "in", "in")
    (x0, y0), (x1, y1) = centre(start), centre(end)
    drag_path(
        page.driver,
        start,
        (x0, y0),
        [(x0 + (x1 - x0) * i / 5, y0 + (y1 - y0) * i / 5) for i in range(1, 6)],
    )
    # backwards, from an input to an output, is the same wire the right way round
    start, end = page.port("sink", "in", "in"), page.port("calc", "out", "out")
    (x0, y0), (x1, y1) = centre(start), centre(end)
    drag_path(page.driver, page.root(), (x0, y0), [(x1, y1)])
    # dropped on empty canvas: nothing
    drag_path(page.driver, page.root(), (x0, y0), [(x0 - 150, y0 + 150)])
    assert page.of("wire") == [
        {"op": "wire", "source": "src", "port": "error", "target": "sink", "target_port": "in"},
        {"op": "wire", "source": "calc", "port": "out", "target": "sink", "target_port": "in"},
    ]
    assert page.of("move") == []
    assert page.driver.find_element(By.CSS_SELECTOR, ".fe-ghost").get_attribute("d") in ("", None)


def test_click_wire_then_delete(page: CanvasPage) -> None:
    page.driver.find_element(By.CSS_SELECTOR, f'[data-wire-key="{KEY}"]').click()
    page.keys(Keys.DELETE)
    assert page.of("select") == [{"op": "select", "nodes": [], "wires": [KEY]}]
    assert page.of("delete") == [{"op": "delete", "nodes": [], "wires": [KEY]}]
    page.node("sink").click()
    page.keys(Keys.BACKSPACE)
    assert page.of("delete")[-1] == {"op": "delete", "nodes": ["sink"], "wires": []}


def test_rubber_band_selects_two_nodes(page: CanvasPage) -> None:
    src, calc = box(page.node("src")), box(page.node("calc"))
    start = (src["x"] - 30, src["y"] - 30)
    end = (calc["x"] + calc["width"] + 30, calc["y"] + calc["height"] + 20)
    steps = [
        (start[0] + (end[0] - start[0]) * i / 6, start[1] + (end[1] - start[1]) * i / 6)
        for i in range(1, 7)
    ]
    drag_path(page.driver, page.root(), start, steps, hold=Keys.SHIFT)
    (select,) = page.of("select")
    assert sorted(select["nodes"]) == ["calc", "src"] and select["wires"] == []
    assert (
        page.driver.find_element(By.CSS_SELECTOR, ".fe-band").value_of_css_property("display")
        == "none"
    )
    # a plain click on empty canvas clears the selection; a pan moves the view and sends nothing
    page.click_empty()
    assert page.of("select")[-1] == {"op": "select", "nodes": [], "wires": []}
    before = page.js("return c.viewState();")
    x, y = centre(page.root())
    drag_path(page.driver, page.root(), (x - 480, y - 300), [(x - 380, y - 250)])
    after = page.js("return c.viewState();")
    assert (after["x"] - before["x"], after["y"] - before["y"]) == (100, 50)
    assert [o["op"] for o in page.settle()] == ["select", "select"]


def test_middle_button_or_space_pans_even_over_a_node(page: CanvasPage) -> None:
    calc = page.node("calc")
    before = page.js("return c.viewState();")
    actions = ActionChains(page.driver, duration=0)
    actions.move_to_element(calc)
    actions.w3c_actions.pointer_action.pointer_down(button=MouseButton.MIDDLE)
    actions.w3c_actions.key_action.pause()
    actions.move_by_offset(40, 30)
    actions.w3c_actions.pointer_action.pointer_up(button=MouseButton.MIDDLE)
    actions.w3c_actions.key_action.pause()
    actions.perform()
    page.click_empty()  # focus, for the space bar
    x, y = centre(calc)
    ActionChains(page.driver).key_down(Keys.SPACE).perform()
    drag_path(page.driver, page.root(), (x, y), [(x - 10, y + 10), (x - 20, y + 20)])
    ActionChains(page.driver).key_up(Keys.SPACE).perform()
    after = page.js("return c.viewState();")
    assert (after["x"] - before["x"], after["y"] - before["y"]) == (20, 50)
    assert page.settle() == []  # no move, no select: the view is not the model
    # shift-click adds to and removes from the selection
    page.node("src").click()
    ActionChains(page.driver).key_down(Keys.SHIFT).click(page.node("calc")).perform()
    ActionChains(page.driver).click(page.node("src")).key_up(Keys.SHIFT).perform()
    assert [o["nodes"] for o in page.of("select")] == [["src"], ["src", "calc"], ["calc"]]


def test_keyboard_intents(page: CanvasPage) -> None:
    page.node("calc").click()
    page.keys(Keys.CONTROL, "c")
    page.keys(Keys.CONTROL, "v")
    page.keys(Keys.CONTROL, "z")
    page.keys(Keys.CONTROL, Keys.SHIFT, "z")
    page.keys(Keys.CONTROL, "y")
    ActionChains(page.driver).double_click(page.node("sink")).perform()
    # typing in a form field is not a canvas shortcut
    page.driver.find_element(By.CSS_SELECTOR, "[data-testid=name]").click()
    page.keys(Keys.CONTROL, "z")
    page.keys(Keys.DELETE)
    ops = [o for o in page.settle() if o["op"] != "select"]
    assert [o["op"] for o in ops] == ["copy", "paste", "undo", "redo", "redo", "open"]
    assert ops[0]["nodes"] == ["calc"] and ops[-1]["node"] == "sink"
    paste = ops[1]  # at the pointer, in flow coordinates, on the grid
    assert paste["x"] % 20 == 0 and paste["y"] % 20 == 0
    assert abs(paste["x"] - 480) <= 60 and abs(paste["y"] - 120) <= 20


def test_palette_drop_and_wheel_zoom(page: CanvasPage) -> None:
    r = box(page.root())
    page.js(
        """
        const dt = new DataTransfer();
        dt.setData("application/x-flowengine-type", "filter");
        const at = {bubbles: true, cancelable: true, dataTransfer: dt, clientX: arguments[0], clientY: arguments[1]};
        c.$el.dispatchEvent(new DragEvent("dragover", at));
        c.$el.dispatchEvent(new DragEvent("drop", at));
        """,
        r["x"] + 500,
        r["y"] + 400,
    )
    view = page.js("return c.viewState();")
    (drop,) = page.of("drop")
    assert drop["type"] == "filter"
    assert drop["x"] == math.floor((500 - view["x"]) / 20 + 0.5) * 20
    assert drop["y"] == math.floor((400 - view["y"]) / 20 + 0.5) * 20
    # the wheel zooms around the cursor: the flow point under it stays put
    zoom = "c.$el.dispatchEvent(new WheelEvent('wheel', {bubbles: true, cancelable: true, deltaY: arguments[2], clientX: arguments[0], clientY: arguments[1]}));"
    page.js(zoom, r["x"] + 300, r["y"] + 200, -300)
    after = page.js("return c.viewState();")
    assert after["k"] > 1.2
    assert (300 - after["x"]) / after["k"] == pytest.approx((300 - view["x"]) / view["k"])
    page.driver.find_element(By.CSS_SELECTOR, '[data-action="fit"]').click()
    assert page.js("return c.viewState();") == pytest.approx(view)
    assert page.settle() == [drop]


def test_status_fill_and_selection_patch_the_dom(page: CanvasPage) -> None:
    page.js("document.querySelector('[data-node-id=calc]').__kept = true;")
    in_loop(page.canvas.set_status, {"calc": {"color": "green", "text": "running", "rate": 12.0}})
    dot = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=calc] .fe-dot")
    wait_until(lambda: "fe-green" in dot.get_attribute("class"))
    text = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=calc] .fe-status-text")
    rate = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=calc] .fe-rate")
    assert (text.text, rate.text) == ("running", "12 rows/s")
    in_loop(
        page.canvas.set_status,
        {"calc": {"color": "red", "text": "failed", "rate": 1234.0, "error": "ZeroDivisionError"}},
    )
    wait_until(lambda: "fe-red" in dot.get_attribute("class"))
    assert (text.text, rate.text) == ("failed", "1.2k rows/s")
    calc = page.node("calc")
    assert "fe-error" in calc.get_attribute("class")
    assert calc.get_attribute("title") == "ZeroDivisionError"
    kept = "return document.querySelector('[data-node-id=calc]').__kept;"
    assert page.js(kept)  # patched, not rebuilt

    # a status update touches only what changed, and Python sends only what changed
    sent: list[tuple] = []
    send = page.canvas.run_method
    page.canvas.run_method = lambda *args, **kw: (sent.append(args), send(*args, **kw))[1]
    page.js(WATCH)
    in_loop(
        page.canvas.set_status,
        {
            "calc": {
                "color": "red",
                "text": "failed",
                "rate": 1234.0,
                "error": "ZeroDivisionError",
            },
            "sink": {"color": "grey", "text": "idle", "rate": 0.0},
        },
    )
    wait_until(lambda: page.driver.find_elements(By.CSS_SELECTOR, "[data-node-id=sink] .fe-grey"))
    assert sent == [("setStatus", {"sink": {"color": "grey", "text": "idle", "rate": 0.0}})]
    assert set(page.js("return c.__touched();")) == {"sink"}
    del page.canvas.run_method

    in_loop(page.canvas.set_fill, {KEY: 0.95})
    line = page.driver.find_element(By.CSS_SELECTOR, ".fe-wire-line")
    wait_until(lambda: "fe-fill-high" in line.get_attribute("class"))
    assert line.value_of_css_property("stroke-width") == "6.75px"

    in_loop(page.canvas.set_selection, ["sink"], [KEY])
    wait_until(lambda: "fe-selected" in page.node("sink").get_attribute("class"))
    assert page.settle() == []  # a selection from Python is not echoed back
    assert page.canvas.selection == (["sink"], [KEY])


def test_a_node_holding_data_on_disk_shows_a_badge(page: CanvasPage) -> None:
    badge = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=sink] .fe-disk")
    assert not badge.is_displayed()  # no buffer, no badge
    disk = {"label": "1.2k", "title": "1,234 rows buffered (2.1 MB, oldest 35s)", "warn": False}
    status = {"color": "yellow", "text": "retrying", "rate": 0.0}
    in_loop(page.canvas.set_status, {"sink": {**status, "disk": disk}})
    wait_until(badge.is_displayed)
    assert (badge.text.split()[-1], badge.get_attribute("title")) == ("1.2k", disk["title"])
    assert "fe-disk-warn" not in badge.get_attribute("class")
    in_loop(page.canvas.set_status, {"sink": {**status, "disk": {**disk, "warn": True}}})
    wait_until(lambda: "fe-disk-warn" in badge.get_attribute("class"))
    assert badge.value_of_css_property("background-color") == "rgba(255, 193, 7, 1)"  # amber
    in_loop(page.canvas.set_status, {"sink": status})  # the buffer went away
    wait_until(lambda: not badge.is_displayed())


def test_set_flow_keeps_unchanged_nodes(page: CanvasPage) -> None:
    page.js("document.querySelector('[data-node-id=sink]').__kept = true;")
    relabelled = {**NODES[1], "label": "renamed", "error": "bad query"}
    in_loop(page.canvas.set_flow, [relabelled, NODES[2]], [wire("calc", "out", "sink")])
    wait_until(lambda: not page.driver.find_elements(By.CSS_SELECTOR, "[data-node-id=src]"))
    label = page.driver.find_element(By.CSS_SELECTOR, "[data-node-id=calc] .fe-label")
    assert label.text == "renamed"
    assert page.node("calc").get_attribute("title") == "bad query"
    assert page.js("return document.querySelector('[data-node-id=sink]').__kept;")
    keys = [
        e.get_attribute("data-wire-key")
        for e in page.driver.find_elements(By.CSS_SELECTOR, "[data-wire-key]")
    ]
    assert keys == ["calc:out->sink:in"]


WATCH = """
const seen = [];
const watch = new MutationObserver((records) => records.forEach((m) => seen.push(m.target)));
watch.observe(c.$el, {subtree: true, childList: true, attributes: true, characterData: true});
c.__touched = () => {
  watch.takeRecords().forEach((m) => seen.push(m.target));
  watch.disconnect();
  const node = (t) => (t.nodeType === 1 ? t : t.parentElement).closest("[data-node-id]");
  return seen.map((t) => node(t)?.dataset.nodeId ?? "canvas");
};
"""


def big_flow() -> tuple[list[NodeView], list[WireView]]:
    """500 nodes in a 25 x 20 grid; 500 chain wires and 100 error wires."""
    nodes = [
        node(f"n{i}", (i % 25) * 200, (i // 25) * 100, ["in"], ["out", "error"]) for i in range(500)
    ]
    wires = [wire(f"n{i}", "out", f"n{(i + 1) % 500}") for i in range(500)]
    wires += [wire(f"n{i}", "error", f"n{(i + 37) % 500}") for i in range(0, 500, 5)]
    return nodes, wires


MEASURE_DRAG = """
const node = document.querySelector('[data-node-id="n262"]');
const r = node.getBoundingClientRect();
const at = (i) => ({bubbles: true, cancelable: true, button: 0, buttons: 1, pointerId: 1,
                    isPrimary: true, clientX: r.x + r.width / 2 + 4 * i, clientY: r.y + r.height / 2 + 2 * i});
const touched = new Set();
const watch = new MutationObserver((records) => records.forEach((m) => touched.add(
    m.type === "childList" ? "childList" : m.target.dataset?.nodeId ?? m.target.getAttribute("class"))));
node.dispatchEvent(new PointerEvent("pointerdown", at(0)));  // selects it: not part of the drag
watch.observe(c.$el, {subtree: true, childList: true, attributes: true});
const work = [];
for (let i = 1; i <= 30; i++) {
  const t0 = performance.now();
  window.dispatchEvent(new PointerEvent("pointermove", at(i)));
  c.flushFrame();
  node.getBoundingClientRect();  // style and layout of what the move changed
  work.push(performance.now() - t0);
}
window.dispatchEvent(new PointerEvent("pointerup", at(30)));
watch.takeRecords().forEach((m) => touched.add(m.target.dataset?.nodeId ?? m.target.getAttribute("class")));
watch.disconnect();
return {work, touched: [...touched]};
"""


def test_500_nodes_render_and_drag_cheaply(page: CanvasPage) -> None:
    nodes, wires = big_flow()
    in_loop(page.canvas.set_flow, nodes, wires)
    count = "return [document.querySelectorAll('[data-node-id]').length, document.querySelectorAll('[data-wire-key]').length];"
    wait_until(lambda: page.js(count) == [500, 600], timeout=20, what="500 nodes and 600 wires")
    in_loop(page.canvas.fit)
    wait_until(lambda: page.js("return c.viewState().k;") < 0.3)
    inside = page.js(
        """const box = c.$el.getBoundingClientRect();
        return [...document.querySelectorAll('[data-node-id]')].every((n) => {
          const r = n.getBoundingClientRect();
          return r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
        });"""
    )
    assert inside  # fit to screen

    k = page.js("return c.viewState().k;")
    target = page.node("n250")
    x, y = centre(target)
    drag_path(page.driver, page.root(), (x, y), [(x + 4 * i, y + 2 * i) for i in range(1, 31)])
    (move,) = page.of("move")
    assert list(move["positions"]) == ["n250"]
    pos = move["positions"]["n250"]
    assert pos["x"] % 20 == 0 and abs(pos["x"] - 120 / k) <= 30
    assert pos["y"] % 20 == 0 and abs(pos["y"] - (1000 + 60 / k)) <= 30

    # one more drag, scripted in the page: the work per pointer move stays small, and only the
    # dragged node and its three wires are touched
    result = page.js(MEASURE_DRAG)
    assert statistics.median(result["work"]) < 16, result["work"]
    assert set(result["touched"]) == {"n262", "fe-wire-hit", "fe-wire-line"}
    assert len(page.of("move")) == 2


def test_first_flow_is_fitted_once_the_canvas_has_a_size(screen: Screen) -> None:
    made: list[FlowCanvas] = []

    @ui.page("/")
    def index() -> None:
        with ui.element("div").style("display: none") as box:
            made.append(FlowCanvas().style("width: 800px; height: 500px"))
            made[0].set_flow(NODES, WIRES)
        ui.button("show", on_click=lambda: box.style(replace=""))

    screen.open("/")
    view = f"return getElement({made[0].id}).viewState();"
    assert screen.selenium.execute_script(view) == {"x": 0, "y": 0, "k": 1}  # no size, no fit
    screen.click("show")
    wait_until(lambda: screen.selenium.execute_script(view)["x"] == 100, what="the first fit")
