"""The editor while its flow keeps a core busy: page load, canvas round trips, and what viewers
cost the flow.

``flowengine edit`` runs (in a child process of this script, as ``flowengine edit FOLDER``
does, plus one extra route ``/bench/rate`` that reads the flow's counters) on a folder holding
``perf200fast.yaml``: 200 nodes, ten lines of a ``simulate`` source (``realtime: false``: as
fast as it goes) through 18 transforms (``filter`` and ``compute``) into a ``debug`` node.
The flow runs in its own process (``FlowHost``) and uses a whole core. Headless Chromium
(Debian's chromedriver) then measures:

* load: navigation start until the canvas has drawn all 200 nodes (the first load opens and
  starts the flow; the figures are of later loads, with the flow running);
* select: click on a node until its property form (built by the server) shows;
* rate: rows per second the flow's sources emit, with no browser on the flow and with three
  browsers on its Debug tab (alternating windows, so a drift of the machine shows in both).

Targets (issue 11): load <= 1 s, and three viewers change the rate by less than 2%. On a
2-core machine the three headless browsers (and the editor serving them) take CPU the flow
would otherwise have; ``--flow-cpus 1`` keeps the flow on its own core (as on an edge box with
users on other machines), so what is left is what viewers cost the flow through the editor.
Run ``python benchmarks/editor_busy.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FLOW = "perf200fast.yaml"
LINES, PER_LINE = 10, 20  # 200 nodes


def perf_flow(lines: int = LINES, per_line: int = PER_LINE) -> str:
    """The flow's YAML: ``lines`` chains of a fast simulate, transforms and a debug node."""
    out = ["version: 1", "name: perf200fast", "nodes:"]
    for line in range(lines):
        ids = [f"l{line}n{i}" for i in range(per_line)]
        out += [
            f"  {ids[0]}:",
            "    type: simulate",
            "    realtime: false",
            f"    seed: {line}",
            "    batch_size: 600",
            f"    wires: [{ids[1]}]",
        ]
        for i, node in enumerate(ids[1:-1], start=1):
            if i % 2:
                out += [f"  {node}:", "    type: filter", "    query: value > -1e12"]
            else:
                out += [f"  {node}:", "    type: compute", f"    columns: {{v{i}: value * 2}}"]
            out.append(f"    wires: [{ids[i + 1]}]")
        out += [f"  {ids[-1]}:", "    type: debug", "    rows: 0", "    level: debug"]
    out.append("layout:")
    for line in range(lines):
        for i in range(per_line):
            out.append(f"  l{line}n{i}: {{x: {80 + 200 * i}, y: {80 + 100 * line}}}")
    return "\n".join(out) + "\n"


def serve(folder: Path, port: int, run: bool) -> None:
    """The editor, as ``flowengine edit FOLDER`` runs it, plus ``/bench/rate``."""
    from nicegui import app

    from flowengine.logs import setup_logging
    from flowengine.ui.app import Editor, EditorConfig, serve

    setup_logging("warning", "text")
    editor = Editor(EditorConfig(folder, run=run))

    def hosts() -> list[Any]:
        entries = getattr(editor, "open_flows", None)  # the workspace: one host per open flow
        found = [getattr(e, "host", None) for e in entries.values()] if entries else []
        found.append(getattr(editor, "host", None))
        return list({id(h): h for h in found if h is not None}.values())

    @app.get("/bench/rate")
    def rate() -> dict[str, Any]:
        rows = 0
        for host in hosts():
            rows += sum(int(s["rows_out"]) for s in host.snapshot() if s["kind"] == "source")
        pids = [h.pid for h in hosts() if getattr(h, "pid", None)]
        cpu = sum(map(cpu_seconds, pids))
        return {
            "rows": rows,
            "at": time.monotonic(),
            "cpu": cpu,
            "editor": cpu_seconds(os.getpid()),
        }

    serve(editor, host="127.0.0.1", port=port, secret="bench")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the editor did not listen on port {port} within {timeout}s")


def driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from flowengine.ui.browser import CHROMEDRIVER, chrome_options

    browser = webdriver.Chrome(
        service=Service(CHROMEDRIVER), options=chrome_options(window="1400,1000")
    )
    browser.set_script_timeout(120)
    browser.set_page_load_timeout(180)
    return browser


def counters(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/rate", timeout=30) as r:
        return dict(json.load(r))


def wait_nodes(browser: Any, n: int, timeout: float = 180.0) -> float:
    """Seconds from navigation start until ``n`` nodes are drawn (page clock)."""
    deadline = time.monotonic() + timeout
    script = (
        "return document.querySelectorAll('[data-node-id]').length >= arguments[0]"
        " ? performance.now() : null;"
    )
    while time.monotonic() < deadline:
        drawn = browser.execute_script(script, n)
        if drawn is not None:
            return float(drawn) / 1000
        time.sleep(0.02)
    raise SystemExit(f"the canvas did not draw {n} nodes within {timeout}s")


def load(browser: Any, url: str, n: int) -> float:
    browser.get(url)
    return wait_nodes(browser, n)


def select(browser: Any, node: str, field: str) -> float:
    """Seconds from a click on ``node`` until the form's ``field`` shows."""
    from selenium.webdriver.common.by import By

    element = browser.find_element(By.CSS_SELECTOR, f'[data-node-id="{node}"]')
    start = time.perf_counter()
    element.click()
    deadline = start + 60
    while not browser.find_elements(By.CSS_SELECTOR, f'[data-field="{field}"]'):
        if time.perf_counter() > deadline:
            raise SystemExit(f"no form for {node} within 60s")
        time.sleep(0.005)
    return time.perf_counter() - start


def open_debug_tab(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # the tab itself (class "q-tab"), not the tab bar ("q-tabs"): a click in the bar's middle
    # lands on whatever tab is there (Chart)
    tab = browser.find_element(
        By.XPATH, "//div[contains(concat(' ', @class, ' '), ' q-tab ')][.//*[text()='Debug']]"
    )
    tab.click()
    deadline = time.monotonic() + 30
    while "Debug" not in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".q-tab--active")]:
        if time.monotonic() > deadline:
            raise SystemExit("the Debug tab did not open")
        time.sleep(0.05)


def browsers_cpu() -> float:
    """CPU seconds used so far by this script's browsers (chromedriver and Chromium's
    processes): on this machine they compete with the flow, unlike users elsewhere."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        head, tail = text.rsplit(")", 1)
        pid = int(head.split(" (", 1)[0])
        parents[pid], names[pid] = int(tail.split()[1]), head.split(" (", 1)[1]
    ours = {os.getpid()}
    changed = True
    while changed:
        new = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= new
        changed = bool(new)
    return sum(cpu_seconds(pid) for pid in ours if "chrom" in names.get(pid, "").lower())


def rate(port: int, seconds: float) -> tuple[float, float, float, float, float]:
    """Rows per second of wall time and per CPU second of the flow's process; the CPU
    shares of the flow's process, of the editor's and of the browsers'."""
    a, a_browsers = counters(port), browsers_cpu()
    time.sleep(seconds)
    b, b_browsers = counters(port), browsers_cpu()
    rows, wall, cpu = b["rows"] - a["rows"], b["at"] - a["at"], b["cpu"] - a["cpu"]
    editor = (b["editor"] - a["editor"]) / wall
    return rows / wall, rows / max(cpu, 1e-9), cpu / wall, editor, (b_browsers - a_browsers) / wall


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median": statistics.median(values),
        "p95": values[min(len(values) - 1, int(len(values) * 0.95))],
        "max": values[-1],
    }


def measure(port: int, window: float, rounds: int, loads: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/edit/{FLOW}"
    n = LINES * PER_LINE
    first = driver()
    viewers: list[Any] = []
    try:
        opened = load(first, url, n)  # opens and starts the flow
        deadline = time.monotonic() + 60
        while counters(port)["rows"] == 0:
            if time.monotonic() > deadline:
                raise SystemExit("the flow did not run")
            time.sleep(0.2)
        time.sleep(3)  # past the start: the flow at full speed
        loads_s = [load(first, url, n) for _ in range(loads)]
        picks = [("l0n1", "query"), ("l0n2", "columns")] * 5
        selects = [select(first, node, field) for node, field in picks]
        first.get("about:blank")  # no viewer for the first window
        idle: list[float] = []
        watched: list[float] = []
        for _ in range(rounds):
            idle.append(rate(port, window))
            if not viewers:
                viewers = [driver() for _ in range(3)]
                for browser in viewers:
                    load(browser, url, n)
                    open_debug_tab(browser)
            else:
                for browser in viewers:
                    load(browser, url, n)
                    open_debug_tab(browser)
            time.sleep(1)
            watched.append(rate(port, window))
            for browser in viewers:
                browser.get("about:blank")
            time.sleep(1)
    finally:
        for browser in [first, *viewers]:
            browser.quit()
    return {
        "first_load_s": opened,
        "load_s": summary(loads_s),
        "select_s": summary(selects),
        "rate_idle": idle,
        "rate_3_viewers": watched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per rate window")
    parser.add_argument("--rounds", type=int, default=3, help="idle/viewed window pairs")
    parser.add_argument("--loads", type=int, default=5, help="page loads measured")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--flow-cpus",
        help="run the flow on these CPUs (flowengine edit --flow-cpus) and the editor and the "
        "browsers on the others: the viewers on other machines, as in production",
    )
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # the editor's process
    args = parser.parse_args()
    if args.flow_cpus and not args.serve:
        from flowengine.ui.hostproc import CPUS_ENV, cpu_set

        os.environ[CPUS_ENV] = args.flow_cpus  # the flow processes the editor starts
        others = set(range(os.cpu_count() or 1)) - cpu_set(args.flow_cpus)
        os.sched_setaffinity(0, others)  # this script, the editor and the browsers
        print(f"flow on CPU {args.flow_cpus}; editor and browsers on {sorted(others)}")
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.serve[2] == "run")
        return
    folder = Path(tempfile.mkdtemp(prefix="editor-busy-"))
    (folder / FLOW).write_text(perf_flow())
    with editing(folder, run=True) as port:
        # the browsers stand for users on other machines: they come last for the CPU here
        os.nice(19 - os.nice(0))
        r = measure(port, args.window, args.rounds, args.loads)
    with editing(folder, run=False) as port:  # the same page, no flow running: the baseline
        browser = driver()
        try:
            url = f"http://127.0.0.1:{port}/edit/{FLOW}"
            load(browser, url, LINES * PER_LINE)
            r["load_idle_s"] = summary([load(browser, url, LINES * PER_LINE) for _ in range(5)])
        finally:
            browser.quit()
    if args.json:
        print(json.dumps(r, indent=2))
        return

    def mean(key: str, i: int) -> float:
        return statistics.mean(w[i] for w in r[key])

    idle, watched = mean("rate_idle", 0), mean("rate_3_viewers", 0)
    change = (watched - idle) / idle * 100 if idle else float("nan")
    idle_cpu, watched_cpu = mean("rate_idle", 1), mean("rate_3_viewers", 1)
    change_cpu = (watched_cpu - idle_cpu) / idle_cpu * 100 if idle_cpu else float("nan")
    rows = [
        ("first load (opens + starts the flow)", f"{r['first_load_s']:.2f} s", ""),
        ("page load, no flow running (median/p95)", _pair(r["load_idle_s"], "s"), ""),
        ("page load, flow busy (median/p95)", _pair(r["load_s"], "s"), "<= 1 s"),
        ("click node -> form (median/p95)", _pair(r["select_s"], "ms", 1000), ""),
        ("flow rate, no viewer (rows/s)", f"{idle:,.0f}", ""),
        ("flow rate, 3 viewers on Debug", f"{watched:,.0f}", ""),
        ("rate change with 3 viewers", f"{change:+.1f} %", "< 2 %"),
        ("flow rate per CPU second, no viewer", f"{idle_cpu:,.0f}", ""),
        ("flow rate per CPU second, 3 viewers", f"{watched_cpu:,.0f}", ""),
        ("per-CPU-second change with 3 viewers", f"{change_cpu:+.1f} %", "< 2 %"),
        (
            "CPU: flow process / editor, no viewer",
            f"{mean('rate_idle', 2):.0%} / {mean('rate_idle', 3):.0%}",
            "",
        ),
        (
            "CPU: flow process / editor, 3 viewers",
            f"{mean('rate_3_viewers', 2):.0%} / {mean('rate_3_viewers', 3):.0%}",
            "",
        ),
        ("CPU: browsers, 3 viewers (here, not elsewhere)", f"{mean('rate_3_viewers', 4):.0%}", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'':<{width}}  {'measured':>16}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>16}  {target}")
    print(
        "rate windows (rows/s): idle "
        + ", ".join(f"{w[0]:,.0f}" for w in r["rate_idle"])
        + "; 3 viewers "
        + ", ".join(f"{w[0]:,.0f}" for w in r["rate_3_viewers"])
    )


@contextlib.contextmanager
def editing(folder: Path, *, run: bool) -> Iterator[int]:
    """The editor on ``folder`` in a child process; yields its port."""
    port = free_port()
    editor = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(folder), str(port), "run" if run else "no"],
        cwd=folder,
        env={**os.environ, "NICEGUI_STORAGE_PATH": str(folder / ".nicegui")},
        preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0),  # as a user starts it
    )
    try:
        wait_port(port)
        yield port
    finally:
        editor.terminate()
        editor.wait(60)


def _pair(s: dict[str, float], unit: str, scale: float = 1.0) -> str:
    return f"{s['median'] * scale:.2f}/{s['p95'] * scale:.2f} {unit}"


if __name__ == "__main__":
    main()
