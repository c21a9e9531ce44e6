"""MQTT test helpers: the broker the tests share (started by the `broker` fixture in
tests/nodes/mqtt/conftest.py), publishing, and running flows against it.

The broker is the machine's Mosquitto on 127.0.0.1:1883 when it listens (never stopped),
otherwise an embedded amqtt broker (MQTT 3.1.1 only).
"""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import pandas as pd

from flowengine.runtime import Runtime
from flowengine.testing import check_text
from tests.helpers.peers import free_port, port_open, wait_until


@dataclass
class Broker:
    host: str
    port: int
    kind: str  # "mosquitto" or "amqtt"


def start_amqtt() -> tuple[int, asyncio.AbstractEventLoop]:
    from amqtt.broker import Broker as AmqttBroker

    port = free_port()
    loop = asyncio.new_event_loop()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True},
        "topic-check": {"enabled": False},
    }

    def serve() -> None:
        asyncio.set_event_loop(loop)
        with warnings.catch_warnings():  # amqtt's own deprecation notices, not ours
            warnings.simplefilter("ignore", DeprecationWarning)
            broker = AmqttBroker(config, loop=loop)
            loop.run_until_complete(broker.start())
        loop.run_forever()

    threading.Thread(target=serve, daemon=True, name="amqtt").start()
    wait_until(lambda: port_open(port), 10, "the amqtt broker")
    return port, loop


def publish(port: int, messages: list[tuple[str, Any]], qos: int = 1, **tls: Any) -> None:
    """Publish with a plain paho client and wait for every ack (blocking: use a thread)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if tls:
        client.tls_set(**tls)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos: deque[mqtt.MQTTMessageInfo] = deque()
    for topic, payload in messages:
        text = payload if isinstance(payload, str | bytes) else json.dumps(payload)
        infos.append(client.publish(topic, text, qos=qos))
        while len(infos) > 100:  # paho slows down with thousands unacknowledged
            infos.popleft().wait_for_publish(10)
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def source(port: int, topic: Any, **cfg: Any) -> dict[str, Any]:
    return {
        "src": {
            "type": "mqtt_in",
            "broker_port": port,
            "topic": topic,
            "batch_interval": 0.1,
            **cfg,
            "wires": {"out": ["cap"], "error": ["errors"]},
        },
        "cap": {"type": "capture"},
        "errors": {"type": "capture"},
    }


async def running(runtime: Runtime, timeout: float = 10.0) -> asyncio.Task[Any]:
    """Start the flow and wait until the source is subscribed."""
    task = asyncio.create_task(runtime.run())
    async with asyncio.timeout(timeout):
        while runtime.stats["src"].state != "ok":
            if task.done():
                raise AssertionError(f"flow ended early: {task.result()!r}")
            await asyncio.sleep(0.01)
    return task


def rows(runtime: Runtime, node: str = "cap") -> pd.DataFrame:
    frames = [b.frame for b in runtime.node(node).batches]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_with(nodes: dict[str, Any], body: Any, runner: Any = asyncio.run) -> Runtime:
    """Run a flow, let ``body(runtime, task)`` publish and wait, then stop and drain
    (``runner``: how the flow's loop runs, e.g. ``flowengine.loops.run`` for uvloop)."""
    runtime = Runtime(check_text(nodes))

    async def main() -> None:
        task = await running(runtime)
        try:
            await body(runtime, task)
        finally:
            runtime.stop()
            report = await asyncio.wait_for(task, 20)
            assert report.drained

    runner(main())
    return runtime
