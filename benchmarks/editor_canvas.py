"""Editor canvas: how long a big flow takes to show, and the cost of one frame of drag, pan and zoom.

A NiceGUI app with one FlowCanvas runs in a child process on a free port; Debian's headless
Chromium (chromedriver) opens it. For each flow size (N nodes in a grid, 1.2 N wires):

* load: Python's `set_flow` until the browser has every node and wire in the DOM and laid out
  (`py` is the part spent in `set_flow` itself);
* rebuild: the browser's part alone, a fresh version of the same flow built in the page;
* move work: one pointer move of a node drag (handler, frame, style and layout of what changed),
  as the median and 95th percentile of 60 moves;
* drag / zoom / pan frame: the interval between animation frames while every frame carries one
  pointer move, one wheel step or one pan step (includes paint and compositing; 16.7 ms is the
  display rate, so a median near it means no frame was dropped);
* status: `setStatus` for every node at once, with style and layout.

Node-RED's editor is reported to drop to ~100 ms frames at ~800 nodes. Headless Chromium on a
shared machine paints in software, so read the frame figures as upper bounds.
Run ``python benchmarks/editor_canvas.py --help``.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any


def flow(n: int) -> tuple[list[dict], list[dict]]:
    """n nodes in rows of 25; a chain of wires plus one error wire per five nodes."""
    nodes = [
        {
            "id": f"n{i}",
            "type": "compute",
            "label": f"node {i}",
            "x": (i % 25) * 200,
            "y": (i // 25) * 100,
            "inputs": ["in"],
            "outputs": ["out", "error"],
            "color": "#e2d96e",
        }
        for i in range(n)
    ]
    pairs = [(i, "out", (i + 1) % n) for i in range(n)]
    pairs += [(i, "error", (i + 37) % n) for i in range(0, n, 5)]
    wires = [
        {
            "key": f"n{a}:{p}->n{b}:in",
            "source": f"n{a}",
            "port": p,
            "target": f"n{b}",
            "target_port": "in",
        }
        for a, p, b in pairs
    ]
    return nodes, wires


def serve(port: int) -> None:
    """The app under test: a canvas, a button that loads a flow of ?n nodes, a label for timing."""
    from nicegui import ui

    from flowengine.ui.canvas import FlowCanvas

    @ui.page("/")
    def index(n: int = 500) -> None:
        canvas = FlowCanvas().style("width: 1300px; height: 850px")
        spent = ui.label().props("data-bench=py")

        def load() -> None:
            nodes, wires = flow(n)
            start = time.perf_counter()
            canvas.set_flow(nodes, wires)
            spent.text = f"{(time.perf_counter() - start) * 1000:.1f}"
            canvas.fit()

        ui.button("load", on_click=load).props("data-bench=load")
        ui.label(str(canvas.id)).props("data-bench=id")

    ui.run(host="127.0.0.1", port=port, show=False, reload=False, title="canvas bench")


PAGE = "const c = getElement(Number(document.querySelector('[data-bench=id]').textContent));"

LOAD = (
    PAGE
    + """
const [n, done] = [arguments[0], arguments[arguments.length - 1]];
const t0 = performance.now();
document.querySelector('[data-bench=load] button, button[data-bench=load]').click();
(function poll() {
  if (document.querySelectorAll('[data-node-id]').length === n) {
    document.body.getBoundingClientRect();
    requestAnimationFrame(() => done(performance.now() - t0));
  } else setTimeout(poll, 2);
})();
"""
)

REBUILD = (
    PAGE
    + """
const raw = c.st;
const nodes = [...raw.nodes.values()].map((n) => ({...n.view, label: n.view.label + " "}));
const wires = [...raw.wires.values()].map((w) => w.view);
const t0 = performance.now();
c.loadFlow({version: -1, nodes, wires});
document.body.getBoundingClientRect();
return performance.now() - t0;
"""
)

MOVE_WORK = (
    PAGE
    + """
const node = document.querySelector('[data-node-id="n' + arguments[0] + '"]');
const r = node.getBoundingClientRect();
const at = (i) => ({bubbles: true, button: 0, buttons: 1, pointerId: 1, isPrimary: true,
                    clientX: r.x + r.width / 2 + 3 * i, clientY: r.y + r.height / 2 + (i % 7)});
node.dispatchEvent(new PointerEvent("pointerdown", at(0)));
const work = [];
for (let i = 1; i <= 60; i++) {
  const t0 = performance.now();
  window.dispatchEvent(new PointerEvent("pointermove", at(i)));
  c.flushFrame();
  node.getBoundingClientRect();
  work.push(performance.now() - t0);
}
window.dispatchEvent(new PointerEvent("pointerup", at(60)));
return work;
"""
)

FRAMES = (
    PAGE
    + """
const [kind, id, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const box = c.$el.getBoundingClientRect();
const node = document.querySelector('[data-node-id="n' + id + '"]');
const r = node.getBoundingClientRect();
const start = kind === "drag" ? [r.x + r.width / 2, r.y + r.height / 2] : [box.x + 5, box.y + 5];
const at = (i) => ({bubbles: true, cancelable: true, button: 0, buttons: 1, pointerId: 1, isPrimary: true,
                    clientX: start[0] + 3 * i, clientY: start[1] + 2 * i});
if (kind !== "zoom") (kind === "drag" ? node : c.$el).dispatchEvent(new PointerEvent("pointerdown", at(0)));
const stamps = [];
let i = 0;
function step(t) {
  stamps.push(t);
  i += 1;
  if (i > 90) {
    if (kind !== "zoom") window.dispatchEvent(new PointerEvent("pointerup", at(i)));
    const gaps = stamps.slice(1).map((s, j) => s - stamps[j]);
    return done(gaps.slice(10));  // the first frames warm up
  }
  if (kind === "zoom") {
    c.$el.dispatchEvent(new WheelEvent("wheel", {bubbles: true, cancelable: true, deltaY: i % 20 < 10 ? -40 : 40,
                                                  clientX: box.x + 400, clientY: box.y + 300}));
  } else window.dispatchEvent(new PointerEvent("pointermove", at(i)));
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
"""
)

STATUS = (
    PAGE
    + """
const colors = ["green", "yellow", "red", "grey", "blue"];
const times = [];
for (let round = 0; round < 5; round++) {
  const status = {};
  for (const id of c.st.nodes.keys()) {
    status[id] = {color: colors[(round + id.length) % 5], text: "round " + round, rate: round * 1000 + 1};
  }
  const t0 = performance.now();
  c.setStatus(status);
  document.body.getBoundingClientRect();
  times.push(performance.now() - t0);
}
return times;
"""
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the canvas app did not listen on port {port} within {timeout}s")


def driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from flowengine.ui.browser import CHROMEDRIVER, chrome_options

    options = chrome_options(window="1400,1000")
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_script_timeout(120)
    return browser


def stats(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median": round(statistics.median(values), 2),
        "p95": round(values[min(len(values) - 1, int(len(values) * 0.95))], 2),
        "max": round(values[-1], 2),
    }


def measure(browser: Any, port: int, n: int) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    browser.get(f"http://127.0.0.1:{port}/?n={n}")
    deadline = time.monotonic() + 20
    while not browser.find_elements(By.CSS_SELECTOR, ".fe-canvas"):
        if time.monotonic() > deadline:
            raise SystemExit("the canvas did not render")
        time.sleep(0.05)
    time.sleep(0.5)  # let the socket connect before clicking
    load = browser.execute_async_script(LOAD, n)
    py = float(browser.find_element(By.CSS_SELECTOR, "[data-bench=py]").text)
    rebuild = browser.execute_script(REBUILD)
    middle = n // 2
    return {
        "nodes": n,
        "wires": n + len(range(0, n, 5)),
        "load_ms": round(load, 1),
        "py_ms": py,
        "rebuild_ms": round(rebuild, 1),
        "move_work_ms": stats(browser.execute_script(MOVE_WORK, middle)),
        "drag_frame_ms": stats(browser.execute_async_script(FRAMES, "drag", middle + 1)),
        "zoom_frame_ms": stats(browser.execute_async_script(FRAMES, "zoom", middle)),
        "pan_frame_ms": stats(browser.execute_async_script(FRAMES, "pan", middle)),
        "status_ms": stats(browser.execute_script(STATUS)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    browser = None
    try:
        wait_port(port)
        browser = driver()
        results = [measure(browser, port, n) for n in args.sizes]
    finally:
        if browser is not None:
            browser.quit()
        child.terminate()
        child.wait(10)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'nodes':>6} {'wires':>6} {'load':>8} {'py':>7} {'rebuild':>8}  "
        f"{'move work p50/p95':>18}  {'drag frame':>12}  {'zoom frame':>12}  {'pan frame':>12}  {'status':>8}"
    )
    for r in results:

        def pair(key: str, r: dict = r) -> str:
            return f"{r[key]['median']:.1f}/{r[key]['p95']:.1f}"

        print(
            f"{r['nodes']:>6} {r['wires']:>6} {r['load_ms']:>6.0f}ms {r['py_ms']:>5.0f}ms "
            f"{r['rebuild_ms']:>6.0f}ms  {pair('move_work_ms'):>16}ms  {pair('drag_frame_ms'):>10}ms  "
            f"{pair('zoom_frame_ms'):>10}ms  {pair('pan_frame_ms'):>10}ms  {r['status_ms']['median']:>6.1f}ms"
        )
    print("frame figures: median/p95 interval between animation frames, one input event per frame")


if __name__ == "__main__":
    main()
