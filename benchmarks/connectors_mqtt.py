"""MQTT ingest: messages/s into the batching ``mqtt_in`` source with zero loss.

A private Mosquitto on a free port (sized for no loss: unlimited queue, persistent session), a
flow ``mqtt_in -> counting sink`` in this process, and a publisher in another process (paho,
publishing as fast as it can and waiting for every ack at QoS 1). The figure is messages
received / seconds from the first publish to the last message counted in the sink; the run
fails loudly if any message is missing. Run ``python benchmarks/connectors_mqtt.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flowengine.node import Sink
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from flowengine.types import Batch

PUBLISHER = r"""
import collections, json, sys, time
import paho.mqtt.client as mqtt
port, n, qos = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
payloads = [json.dumps({"value": i, "timestamp": 1.7e9 + i / 1000}) for i in range(n)]
print(json.dumps({"start": time.time()}), flush=True)
infos = collections.deque()
for i, p in enumerate(payloads):
    infos.append(c.publish(f"bench/line3/s{i % 16}", p, qos=qos))
    while qos and len(infos) >= 100:  # a small ack window: paho slows down with many unacked
        infos.popleft().wait_for_publish(120)
for info in infos:
    info.wait_for_publish(120)
end = time.time()
c.disconnect(); c.loop_stop()
print(json.dumps({"end": end, "sent": n}), flush=True)
"""


class Count(Sink):
    """Counts rows and remembers when the last one arrived."""

    rows = 0
    last = 0.0
    values: set[int] = set()

    def write(self, batch: Batch) -> None:
        Count.rows += len(batch.frame)
        Count.last = time.time()
        Count.values.update(batch.frame["value"].astype(int).tolist())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_broker(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 1000\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


async def one_run(port: int, n: int, qos: int, batch_size: int) -> dict[str, Any]:
    Count.rows, Count.last, Count.values = 0, 0.0, set()
    flow = {
        "src": {
            "type": "mqtt_in",
            "broker_port": port,
            "topic": "bench/#",
            "qos": qos,
            "clean_session": False,
            "client_id": f"bench-sub-{qos}-{time.time_ns()}",
            "batch_size": batch_size,
            "batch_interval": 0.2,
            "wires": ["count"],
        },
        "count": {"type": "count"},
    }
    runtime = Runtime(check_text(flow, types={"count": Count}))
    task = asyncio.create_task(runtime.run())
    while runtime.stats["src"].state != "ok":
        await asyncio.sleep(0.01)
    pub = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISHER, str(port), str(n), str(qos), stdout=subprocess.PIPE
    )
    assert pub.stdout is not None
    start = json.loads(await pub.stdout.readline())["start"]
    done = json.loads(await pub.stdout.readline())
    await pub.wait()
    deadline = time.monotonic() + 30
    while Count.rows < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    runtime.stop()
    await task
    received = len(Count.values)
    return {
        "qos": qos,
        "sent": n,
        "received": received,
        "lost": n - received,
        "publish_s": round(done["end"] - start, 3),
        "ingest_s": round(Count.last - start, 3),
        "msg_per_s": round(received / (Count.last - start)) if Count.last else 0,
        "publisher_msg_per_s": round(n / (done["end"] - start)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per run")
    parser.add_argument("--qos", type=int, nargs="+", default=[0, 1], choices=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp))
        try:
            results = [
                asyncio.run(one_run(port, args.messages, q, args.batch_size)) for q in args.qos
            ]
        finally:
            broker.terminate()
            broker.wait(10)
    if args.json:
        for r in results:
            print(json.dumps(r))
        return
    print(f"{'QoS':>3} {'sent':>8} {'lost':>5} {'ingest msg/s':>13} {'publisher msg/s':>16}")
    for r in results:
        print(
            f"{r['qos']:>3} {r['sent']:>8} {r['lost']:>5} {r['msg_per_s']:>13,} "
            f"{r['publisher_msg_per_s']:>16,}"
        )
    if any(r["lost"] for r in results):
        sys.exit("messages were lost")


if __name__ == "__main__":
    main()
