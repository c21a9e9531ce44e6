"""`mqtt_out`'s `confirm: window` (the default): a QoS 1 batch is done once published, its
acknowledgements come while the next batches go out. What must still hold: order and
exactly-once delivery through a small window across many batches; a clean stop waits for every
acknowledgement; a checkpoint records what the broker had not acknowledged and a crashed flow
publishes it again on restart (at least once). Waits are for conditions, never timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from flowengine.checkpoint import CheckpointStore
from flowengine.runtime import Runtime
from tests.helpers.mqtt import Broker, publish, rows, run_with, source
from tests.helpers.peers import until
from tests.nodes.mqtt.test_mqtt import SessionSubscriber
from tests.nodes.mqtt.test_paths import Collector

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _relay(in_port: int, in_topic: str, out_port: int, **out: Any) -> dict[str, Any]:
    """mqtt_in (QoS 1, one message a batch) -> mqtt_out (QoS 1, out/{sensor})."""
    nodes = source(in_port, in_topic, qos=1, batch_size=1)
    nodes["src"]["wires"] = {"out": ["pub"], "error": ["errors"]}
    nodes["pub"] = {
        "type": "mqtt_out",
        "broker_port": out_port,
        "topic": "out/{sensor}",
        "qos": 1,
        **out,
        "wires": {"error": ["errors"]},
    }
    del nodes["cap"]
    return nodes


def _messages(topic: str, start: int, end: int) -> list[tuple[str, Any]]:
    return [(topic, {"seq": i, "sensor": "s", "value": float(i)}) for i in range(start, end)]


def test_batches_in_flight_together_keep_order_and_come_once(broker: Broker, prefix: str) -> None:
    """300 one-message batches through a window of 4: several batches are unacknowledged at
    once, each waits only for room; every message arrives once, in order."""
    sub = Collector(broker.port, f"{prefix}/out/#")
    nodes = _relay(broker.port, f"{prefix}/in", broker.port, max_inflight=4)
    nodes["pub"]["topic"] = prefix + "/out/{sensor}"

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, broker.port, _messages(f"{prefix}/in", 0, 300))
        await until(lambda: len(sub.got) >= 300, task, 60)

    runtime = run_with(nodes, body)
    sub.close()
    assert sub.seqs() == list(range(300))
    assert runtime.stats["pub"].counters["published"] == 300
    assert runtime.stats["pub"].errors == 0 and rows(runtime, "errors").empty


def test_a_clean_stop_waits_for_the_acknowledgements_still_due(
    broker: Broker, prefix: str, private_mosquitto: Any
) -> None:
    """The sink's broker stops answering (SIGSTOP): batches are still published (written,
    unacknowledged), the checkpoint state holds them; a stop meanwhile waits until the broker
    answers again and acknowledges them all, then ends without an error."""
    peer = private_mosquitto()
    sub = SessionSubscriber(peer.port, "out/#")
    nodes = _relay(broker.port, f"{prefix}/in", peer.port)
    assert peer.proc is not None
    pid = peer.proc.pid

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, broker.port, _messages(f"{prefix}/in", 0, 5))
        await until(lambda: len(sub.got) >= 5, task, 20)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.to_thread(publish, broker.port, _messages(f"{prefix}/in", 5, 10))
            pub = runtime.stats["pub"]
            await until(lambda: pub.counters.get("published", 0) >= 10, task, 20)
            pending = runtime.node("pub").snapshot()
            assert [json.loads(p)["seq"] for _, p, _, _ in pending] == list(range(5, 10))
            runtime.stop()
        finally:
            os.kill(pid, signal.SIGCONT)

    runtime = run_with(nodes, body)
    wait = time.monotonic() + 20
    while len({p["value"] for _, p, _ in sub.got}) < 10 and time.monotonic() < wait:
        time.sleep(0.02)
    sub.close()
    assert sorted({int(p["value"]) for _, p, _ in sub.got}) == list(range(10))
    assert runtime.stats["pub"].errors == 0 and rows(runtime, "errors").empty
    assert runtime.node("pub").snapshot() is None  # nothing left unacknowledged


def _flow(tmp: Path, broker: Broker, topic: str, client_id: str, peer_port: int) -> Path:
    flow = tmp / "relay.yaml"
    flow.write_text(
        f"""
version: 1
settings: {{checkpoint: 100ms, state_dir: {tmp / "state"}}}
nodes:
  src:
    type: mqtt_in
    broker_port: {broker.port}
    topic: "{topic}"
    qos: 1
    client_id: {client_id}
    clean_session: false
    batch_size: 1
    wires: [pub]
  pub:
    type: mqtt_out
    broker_port: {peer_port}
    topic: "out/{{sensor}}"
    qos: 1
    connect_timeout: 2
"""
    )
    return flow


def _run(flow: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine.cli", "run", str(flow), "--no-live"],
        cwd=flow.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(what: str, condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _saved_pending(state: Path) -> list[int]:
    """The seqs of the sink's unacknowledged messages in the last saved checkpoint."""
    checkpoint = CheckpointStore(state).load()
    if checkpoint is None or "pub" not in checkpoint.states:
        return []
    pending = pickle.loads(checkpoint.states["pub"]) or []
    return [json.loads(payload)["seq"] for _, payload, _, _ in pending]


def _session(port: int, topic: str, client_id: str) -> None:
    """The source's persistent session, made before the flow runs (a deployed flow has it):
    what is published before the flow subscribes waits there."""
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_subscribe = lambda *a: done.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(topic, qos=1)
    assert done.wait(10)
    client.disconnect()
    client.loop_stop()


def _listening(sub: SessionSubscriber, port: int) -> None:
    """Wait until ``sub`` is subscribed again on a restarted broker: a probe arrives."""
    _wait("the subscriber back", sub.client.is_connected)
    deadline = time.monotonic() + 20
    while not any(p.get("value") == -1 for _, p, _ in sub.got):
        assert time.monotonic() < deadline, "the subscriber is not back"
        publish(port, [("out/probe", {"value": -1})])
        time.sleep(0.1)


def test_a_crash_after_a_checkpoint_publishes_the_unacknowledged_again(
    broker: Broker, prefix: str, private_mosquitto: Any, tmp_path: Path
) -> None:
    """Checkpoints on: messages published to a broker that does not answer (SIGSTOP) are in
    the checkpoint as the sink's state, while the source's journal lets go of their rows. The
    flow is killed (kill -9), that broker too (what it had read is gone); after both restart,
    the restored sink publishes them again: none is lost."""
    if broker.kind != "mosquitto":
        pytest.skip("needs Mosquitto's persistent sessions")
    peer = private_mosquitto()
    sub = SessionSubscriber(peer.port, "out/#")
    topic, client_id = f"{prefix}/in", f"fe-confirm-{uuid.uuid4().hex[:8]}"
    flow = _flow(tmp_path, broker, topic, client_id, peer.port)
    _session(broker.port, topic, client_id)
    engine = _run(flow)
    try:
        _wait("the flow", lambda: (tmp_path / "state" / "checkpoint").exists())
        publish(broker.port, _messages(topic, 0, 5))
        _wait("the first messages", lambda: len(sub.got) >= 5)
        assert peer.proc is not None
        os.kill(peer.proc.pid, signal.SIGSTOP)
        publish(broker.port, _messages(topic, 5, 10))
        _wait(
            "a checkpoint holding them",
            lambda: _saved_pending(tmp_path / "state") == [5, 6, 7, 8, 9],
        )
        engine.kill()
        engine.wait(10)
        peer.proc.kill()  # stopped: what it read from the socket dies with it
        peer.proc.wait(10)
        peer.start()
        _listening(sub, peer.port)
        engine = _run(flow)
        _wait("every message", lambda: {int(p["value"]) for _, p, _ in sub.got} >= set(range(10)))
    finally:
        if peer.proc is not None and peer.proc.poll() is None:
            os.kill(peer.proc.pid, signal.SIGCONT)  # the test failed while it was stopped
        engine.send_signal(signal.SIGTERM)
        _, err = engine.communicate(timeout=60)
        sub.close()
        # the source's persistent session ends with a clean connect
        clean = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        clean.connect(broker.host, broker.port)
        clean.disconnect()
    assert engine.returncode == 0, err
