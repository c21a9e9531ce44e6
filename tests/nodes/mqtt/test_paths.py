"""The event-loop client's paths against real brokers: order, loss and duplicates through a
relay at QoS 0-2 and MQTT 3.1.1/5, backpressure from a tiny buffer, a publish window smaller
than the batch (and a broker's receive maximum), QoS 2 on both sides, acknowledgements held
for the journal at QoS 2, a broker restart under a running relay, and a silent broker found
by the keep-alive. No timing is asserted: every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from flowengine.runtime import Runtime
from flowengine.testing import Capture, check_text
from flowengine.types import Batch
from tests.helpers.mqtt import Broker, publish, rows, run_with, running, source
from tests.helpers.peers import until
from tests.nodes.mqtt.test_mqtt import SessionSubscriber

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Collector:
    """A paho subscriber keeping each payload (parsed) in arrival order."""

    def __init__(self, port: int, topic: str, qos: int = 1, v5: bool = False) -> None:
        self.got: list[dict[str, Any]] = []
        self.topics: list[str] = []
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
        subscribed = threading.Event()

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            self.topics.append(message.topic)
            self.got.append(json.loads(message.payload))

        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def seqs(self) -> list[int]:
        return [int(p["seq"]) for p in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _relay(port: int, prefix: str, qos: int, protocol: str = "3.1.1", **out: Any) -> dict[str, Any]:
    """mqtt_in (prefix/in) -> mqtt_out (prefix/out/{sensor}), both at ``qos``."""
    nodes = source(port, f"{prefix}/in", qos=qos, protocol=protocol)
    nodes["src"]["wires"] = {"out": ["pub"], "error": ["errors"]}
    nodes["pub"] = {
        "type": "mqtt_out",
        "broker_port": port,
        "topic": prefix + "/out/{sensor}",
        "qos": qos,
        "protocol": protocol,
        **out,
        "wires": {"error": ["errors"]},
    }
    del nodes["cap"]
    return nodes


def _payloads(start: int, end: int) -> list[dict[str, Any]]:
    return [
        {"seq": i, "sensor": f"s{i % 3}", "value": i / 4, "ts": 1.7e9 + i, "pad": "x" * 40}
        for i in range(start, end)
    ]


async def _send(port: int, topic: str, payloads: list[dict[str, Any]], qos: int) -> None:
    await asyncio.to_thread(publish, port, [(topic, p) for p in payloads], max(qos, 1))


@pytest.mark.parametrize(
    ("qos", "protocol"), [(0, "3.1.1"), (1, "3.1.1"), (1, "5"), (2, "3.1.1"), (2, "5")]
)
def test_relay_keeps_order_loses_nothing_repeats_nothing(
    broker: Broker, prefix: str, qos: int, protocol: str
) -> None:
    if protocol == "5" and broker.kind != "mosquitto":
        pytest.skip("amqtt speaks MQTT 3.1.1 only; MQTT 5 needs Mosquitto")
    n = 1500
    sub = Collector(broker.port, f"{prefix}/out/#", max(qos, 1))
    nodes = _relay(broker.port, prefix, qos, protocol)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        # in rounds of 500: the shared broker queues at most 1,000 per subscriber
        for start in range(0, n, 500):
            await _send(broker.port, f"{prefix}/in", _payloads(start, start + 500), qos)
            await until(lambda end=start + 500: len(sub.got) >= end, task, 60)

    runtime = run_with(nodes, body)
    sub.close()
    assert sub.seqs() == list(range(n))  # in order, none lost, none twice
    first = sub.got[0]
    assert first["value"] == 0.0 and first["sensor"] == "s0" and first["pad"] == "x" * 40
    assert first["quality"] == "good" and first["topic"] == f"{prefix}/in"
    assert first["timestamp"].endswith("+00:00") and first["ts"] == 1.7e9
    assert runtime.stats["pub"].counters["published"] == n
    assert rows(runtime, "errors").empty


def test_the_relay_runs_on_uvloop_as_flowengine_run_starts_it(broker: Broker, prefix: str) -> None:
    """``flowengine run`` uses uvloop when installed: its transports are not asyncio's."""
    pytest.importorskip("uvloop", reason="uvloop (flowengine[fast]) is not installed")
    from flowengine import loops

    n, loop_kinds = 600, []
    sub = Collector(broker.port, f"{prefix}/out/#", 1)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        loop_kinds.append(loops.name())
        await _send(broker.port, f"{prefix}/in", _payloads(0, n), 1)
        await until(lambda: len(sub.got) >= n, task, 60)

    runtime = run_with(_relay(broker.port, prefix, 1), body, runner=loops.run)
    sub.close()
    assert loop_kinds == ["uvloop"]
    assert sub.seqs() == list(range(n))
    assert runtime.stats["pub"].counters["published"] == n


def test_a_tiny_buffer_pauses_reading_and_loses_nothing(broker: Broker, prefix: str) -> None:
    """A hand-off of 3 messages taken slowly: reads fill it, reading pauses until the reader
    has taken what is there (the broker holds the rest meanwhile); everything arrives once,
    in order. (A node's `buffer` key is the runtime's sink buffer, so this drives the client.)"""
    from flowengine.nodes.mqtt.client import MqttClient
    from flowengine.nodes.mqtt.config import MqttConnection

    async def main() -> tuple[list[int], bool]:
        client = MqttClient(MqttConnection(broker_port=broker.port))
        await client.connect([(f"{prefix}/in", 1)], buffer=3)
        sender = asyncio.create_task(_send(broker.port, f"{prefix}/in", _payloads(0, 600), 1))
        got: list[int] = []
        paused = False
        handoff, link = client.handoff, client._link
        assert handoff is not None and link is not None and link.transport is not None
        async with asyncio.timeout(60):
            while len(got) < 600:
                await asyncio.sleep(0.002)  # a slow flow
                paused = paused or not link.transport.is_reading()
                got += [json.loads(p)["seq"] for _, p, _ in handoff.take()]
        await sender
        await client.disconnect()
        return got, paused

    got, paused = asyncio.run(main())
    assert got == list(range(600))
    assert paused


def test_window_smaller_than_the_batch_and_a_broker_receive_maximum(
    private_mosquitto: Any, prefix: str
) -> None:
    """400 rows in one batch at QoS 1 and 2 to a broker taking 10 unacknowledged messages:
    MQTT 3.1.1 publishers with `max_inflight: 7`, MQTT 5 ones with the default, held to 10 by
    the broker's receive maximum. Each message arrives once, in order."""
    peer = private_mosquitto("max_inflight_messages 10\n")
    rows_in = [{"seq": i, "sensor": "s", "value": float(i)} for i in range(400)]
    subs = {q: Collector(peer.port, f"{prefix}/q{q}/#", q) for q in (1, 2)}
    nodes: dict[str, Any] = {"inj": {"type": "inject", "rows": rows_in, "wires": []}}
    for qos in (1, 2):
        for protocol in ("3.1.1", "5"):
            name = f"pub{qos}{protocol[0]}"
            nodes["inj"]["wires"].append(name)
            nodes[name] = {
                "type": "mqtt_out",
                "broker_port": peer.port,
                "topic": f"{prefix}/q{qos}/{protocol}",
                "qos": qos,
                "protocol": protocol,
                **({"max_inflight": 7} if protocol == "3.1.1" else {}),
            }
    runtime = Runtime(check_text(nodes))
    report = asyncio.run(asyncio.wait_for(runtime.run(), 60))
    assert report.drained
    for qos, sub in subs.items():
        asyncio.run(_wait_for(lambda s=sub: len(s.got) >= 800))
        sub.close()
        for protocol in ("3.1.1", "5"):
            topic = f"{prefix}/q{qos}/{protocol}"
            seqs = [p["seq"] for t, p in zip(sub.topics, sub.got, strict=True) if t == topic]
            assert seqs == list(range(400)), (qos, protocol)
            assert runtime.stats[f"pub{qos}{protocol[0]}"].counters["published"] == 400


async def _wait_for(condition: Any, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_held_qos2_confirmations_complete_before_a_clean_restart(
    broker: Broker, prefix: str, tmp_path: Path
) -> None:
    """Checkpoints on: QoS 2 messages are confirmed (PUBREC) only once journaled. After a
    clean stop and a restart with the same session, only what was published meanwhile comes:
    the first ones were confirmed, the broker does not send them again."""
    if broker.kind != "mosquitto":
        pytest.skip("needs Mosquitto's persistent sessions")
    client_id = f"fe-q2-{uuid.uuid4().hex[:8]}"
    nodes = source(broker.port, f"{prefix}/in", qos=2, client_id=client_id, clean_session=False)
    flow = {
        "version": 1,
        "settings": {"checkpoint": "200ms", "state_dir": str(tmp_path / "state")},
        "nodes": nodes,
    }

    def once(start: int, end: int) -> Runtime:
        async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
            await _send(broker.port, f"{prefix}/in", _payloads(start, end), 2)
            await until(lambda: len(rows(runtime)) >= end - start, task, 30)

        return run_with(flow, body)

    try:
        assert rows(once(0, 40))["seq"].tolist() == list(range(40))
        again = once(40, 45)
        assert rows(again)["seq"].tolist() == list(range(40, 45))  # nothing redelivered
    finally:
        end = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        end.connect(broker.host, broker.port)  # a clean session ends ours
        end.disconnect()


def test_relay_across_a_broker_restart_loses_nothing_and_counts_duplicates(
    broker: Broker, prefix: str, private_mosquitto: Any
) -> None:
    """The sink's broker is stopped and started while 600 messages pass: every one arrives;
    repeats (QoS 1 is at least once) are only those unacknowledged at the loss."""
    peer = private_mosquitto()
    sub = SessionSubscriber(peer.port, "out/#")
    nodes = _relay(broker.port, prefix, 1, max_inflight=50)
    nodes["pub"].update(broker_port=peer.port, topic="out/{sensor}")

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await _send(broker.port, f"{prefix}/in", _payloads(0, 300), 1)
        await until(lambda: len(sub.got) >= 100, task, 30)
        await asyncio.to_thread(peer.stop)
        await _send(broker.port, f"{prefix}/in", _payloads(300, 600), 1)
        await until(lambda: runtime.stats["pub"].state == "retrying", task, 20)
        await asyncio.to_thread(peer.start)
        await until(lambda: len({p["seq"] for _, p, _ in sub.got}) >= 600, task, 60)

    runtime = run_with(nodes, body)
    sub.close()
    seqs = [int(p["seq"]) for _, p, _ in sub.got]
    assert sorted(set(seqs)) == list(range(600))
    duplicates = len(seqs) - len(set(seqs))
    assert duplicates <= 50  # at most the window that was unacknowledged
    assert runtime.stats["pub"].errors == 0


def test_a_silent_broker_is_found_by_the_keep_alive(private_mosquitto: Any) -> None:
    """A broker that stops answering (SIGSTOP: the socket stays open) is given up after 1.5
    keep-alive periods; once it answers again the source is back and reads on."""
    peer = private_mosquitto()
    nodes = source(peer.port, "plant/#", keep_alive=1, connect_timeout=1.0)
    nodes["src"]["retry"] = {"initial": 0.2, "max": 0.5}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        assert peer.proc is not None
        os.kill(peer.proc.pid, signal.SIGSTOP)
        try:
            await until(lambda: runtime.stats["src"].state == "retrying", task, 20)
        finally:
            os.kill(peer.proc.pid, signal.SIGCONT)
        await until(lambda: runtime.stats["src"].state == "ok", task, 20)
        await asyncio.to_thread(publish, peer.port, [("plant/a", 5)])
        await until(lambda: len(rows(runtime)) >= 1, task, 20)

    runtime = run_with(nodes, body)
    assert "keep alive" in (runtime.stats["src"].last_error or "")
    assert rows(runtime)["value"].tolist() == [5.0]


class Gate(Capture):
    """A capture whose writes wait until the test opens the gate: a receiver kept busy."""

    opened: asyncio.Event | None = None

    async def write(self, batch: Batch) -> None:
        assert Gate.opened is not None
        await Gate.opened.wait()
        await super().write(batch)


def test_what_arrives_while_the_receiver_is_busy_goes_as_one_batch(
    broker: Broker, prefix: str
) -> None:
    """With ``linger: 0`` a message goes on at once, unless a batch sent before still waits
    for the receiver (``ctx.backlog``): then what arrives meanwhile is merged into the next
    batch rather than queued as many small ones."""
    nodes = source(broker.port, f"{prefix}/in", batch_interval=600)  # never due by age
    nodes["cap"] = {"type": "gate"}
    topic = f"{prefix}/in"

    async def main() -> list[int]:
        Gate.opened = asyncio.Event()
        runtime = Runtime(check_text(nodes, types={"gate": Gate}))
        task = await running(runtime)
        sent = runtime.stats["src"]
        await _send(broker.port, topic, _payloads(0, 1), 0)  # taken by the gate, which holds
        await until(lambda: sent.rows_out == 1, task, 30, "the first batch")
        await _send(broker.port, topic, _payloads(1, 2), 0)  # waits on the wire
        await until(lambda: sent.rows_out == 2, task, 30, "the second batch")
        await _send(broker.port, topic, _payloads(2, 100), 0)  # held by the source
        parser = runtime.node("src").parser  # type: ignore[attr-defined]
        await until(lambda: parser.pending == 98, task, 30, "the rest at the source")
        assert sent.rows_out == 2
        Gate.opened.set()
        gate = runtime.node("cap")
        await until(lambda: sum(map(len, gate.batches)) == 100, task, 30, "all rows")  # type: ignore[attr-defined]
        runtime.stop()
        await asyncio.wait_for(task, 20)
        assert [r["seq"] for b in gate.batches for r in b.frame.to_dict("records")] == list(
            range(100)
        )  # type: ignore[attr-defined]
        return [len(b) for b in gate.batches]  # type: ignore[attr-defined]

    assert asyncio.run(main()) == [1, 1, 98]
