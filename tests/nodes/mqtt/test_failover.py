"""MQTT failover: `broker_host` as a list, against two Mosquitto processes of the test's own
(one killed and restarted under a running flow), the config checks of the list, and the
editor's form for it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowengine.nodes.mqtt.config import MqttConnection
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from tests.helpers.cli import flowengine
from tests.helpers.mqtt import Broker, publish, rows, run_with, source
from tests.helpers.peers import port_open, until, wait_until
from tests.nodes.mqtt.test_mqtt import HAVE_MOSQUITTO, PrivateMosquitto, SessionSubscriber

Pair = Callable[[], tuple[PrivateMosquitto, PrivateMosquitto]]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Two Mosquittos of our own on free ports: the primary and the backup."""
    if not HAVE_MOSQUITTO:
        pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto)")
    started: list[PrivateMosquitto] = []

    def make() -> tuple[PrivateMosquitto, PrivateMosquitto]:
        started.extend([PrivateMosquitto(tmp_path), PrivateMosquitto(tmp_path)])
        return started[-2], started[-1]

    yield make
    for peer in started:
        if peer.proc and peer.proc.poll() is None:
            peer.proc.terminate()
            peer.proc.wait(10)


def kill(peer: PrivateMosquitto) -> None:
    """SIGKILL: the broker vanishes without a word to its clients."""
    assert peer.proc is not None
    os.kill(peer.proc.pid, signal.SIGKILL)
    peer.proc.wait(10)
    wait_until(lambda: not port_open(peer.port), 10, "mosquitto to die")


def hosts(*peers: PrivateMosquitto) -> list[str]:
    return [f"127.0.0.1:{p.port}" for p in peers]


def text(runtime: Runtime, node: str = "src") -> str:
    return runtime.stats[node].text


def test_source_fails_over_and_back_and_gets_every_message_once(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages 0-4 go to the primary, which is then killed; 5-9 to the backup, which the
    flow now reads; the primary comes back and the flow moves to it; 10-14 go there."""
    caplog.set_level(logging.INFO)
    primary, backup = pair()
    nodes = source(0, "plant/#", broker_host=hosts(primary, backup), failback_interval=0.5)
    del nodes["src"]["broker_port"]  # each entry names its port
    nodes["src"]["retry"] = {"initial": 0.2, "max": 0.5}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await until(lambda: f"at 127.0.0.1:{primary.port} (primary)" in text(runtime), task)
        await asyncio.to_thread(publish, primary.port, [("plant/a", i) for i in range(5)])
        await until(lambda: len(rows(runtime)) >= 5, task)
        await asyncio.to_thread(kill, primary)
        await until(lambda: f"127.0.0.1:{backup.port} (backup 1 of 2)" in text(runtime), task)
        await until(lambda: runtime.stats["src"].state == "ok", task)
        await asyncio.to_thread(publish, backup.port, [("plant/a", i) for i in range(5, 10)])
        await until(lambda: len(rows(runtime)) >= 10, task)
        await asyncio.to_thread(primary.start)
        await until(lambda: f"127.0.0.1:{primary.port} (primary)" in text(runtime), task)
        await asyncio.to_thread(publish, primary.port, [("plant/a", i) for i in range(10, 15)])
        await until(lambda: len(rows(runtime)) >= 15, task)

    runtime = run_with(nodes, body)
    assert sorted(rows(runtime)["value"].tolist()) == list(range(15))  # none lost, none twice
    stats = runtime.stats["src"]
    assert stats.counters["failovers"] == 1 and stats.counters["failbacks"] == 1
    assert stats.retries >= 1
    assert f"failover: 127.0.0.1:{primary.port} (primary) lost, 127.0.0.1:{backup.port}" in (
        caplog.text
    )
    assert f"failback: 127.0.0.1:{primary.port} (primary) serves again" in caplog.text


def test_journaled_persistent_session_switches_back_without_a_repeat(
    pair: Pair, tmp_path: Path
) -> None:
    """Checkpoints (acks held until journaled) and a persistent session on both brokers. The
    switch back retires the backup only once what it delivered is acknowledged, so its session
    holds nothing to send again; what is published there later waits in that session and comes
    when the flow fails over to it once more: each message once."""
    primary, backup = pair()
    nodes = source(0, "plant/#", broker_host=hosts(primary, backup), failback_interval=0.5)
    del nodes["src"]["broker_port"]
    nodes["src"].update(qos=1, clean_session=False, client_id=f"fe-failover-{tmp_path.name}"[:23])
    nodes["src"]["retry"] = {"initial": 0.2, "max": 0.5}
    flow = {
        "version": 1,
        "settings": {"checkpoint": "200ms", "state_dir": str(tmp_path / "state")},
        "nodes": nodes,
    }

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        def count(n: int) -> Callable[[], bool]:
            return lambda: len(rows(runtime)) >= n

        await asyncio.to_thread(publish, primary.port, [("plant/a", i) for i in range(5)])
        await until(count(5), task)
        await asyncio.to_thread(primary.stop)  # SIGTERM: it keeps the session on disk
        await until(lambda: "(backup 1 of 2)" in text(runtime), task)
        await asyncio.to_thread(publish, backup.port, [("plant/a", i) for i in range(5, 10)])
        await until(count(10), task)
        await asyncio.to_thread(primary.start)
        await until(lambda: "(primary)" in text(runtime), task)
        await asyncio.to_thread(publish, primary.port, [("plant/a", i) for i in range(10, 15)])
        await until(count(15), task)
        await asyncio.to_thread(publish, backup.port, [("plant/a", i) for i in range(15, 20)])
        await asyncio.to_thread(kill, primary)  # back to the backup: its session has 15-19
        await until(count(20), task)

    runtime = run_with(flow, body)
    values = rows(runtime)["value"].tolist()
    assert set(values) == set(range(20))
    # at least once for 0-4: their acks may still be on the way when the primary stops, and
    # its session sends them again; exactly once for all that crossed the switches
    assert sorted(v for v in values if v >= 5) == list(range(5, 20))
    assert runtime.stats["src"].counters["failovers"] == 2


def test_sink_publishes_on_the_backup_then_on_the_primary_again(
    broker: Broker, prefix: str, pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    """mqtt_in (the shared broker) -> mqtt_out [primary, backup] at QoS 1. The primary stops
    mid-flow: the sink moves to the backup and publishes there what the primary had not
    acknowledged; once the primary is back the sink publishes there again."""
    caplog.set_level(logging.INFO)
    primary, backup = pair()
    at_primary, at_backup = (
        SessionSubscriber(primary.port, "out/#"),
        SessionSubscriber(backup.port, "out/#"),
    )
    nodes = source(broker.port, f"{prefix}/+", batch_size=1)
    nodes["src"]["wires"] = {"out": ["pub"]}
    nodes["pub"] = {
        "type": "mqtt_out",
        "broker_host": hosts(primary, backup),
        "topic": "out/{sensor}",
        "qos": 1,
        "failback_interval": 0.3,
        "wires": {"error": ["errors"]},
    }
    del nodes["cap"]

    def got(sub: SessionSubscriber) -> set[int]:
        return {int(p["value"]) for _, p, _ in sub.got}

    async def send(values: range) -> None:
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/s{i}", i) for i in values])

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await send(range(5))
        await until(lambda: got(at_primary) >= set(range(5)), task)
        await asyncio.to_thread(primary.stop)  # SIGTERM: its subscriber keeps what it got
        await send(range(5, 10))
        await until(lambda: got(at_backup) >= set(range(5, 10)), task)
        await asyncio.to_thread(primary.start)
        await until(lambda: "failback:" in caplog.text, task)
        await send(range(10, 15))
        await until(lambda: got(at_primary) >= set(range(10, 15)), task)

    runtime = run_with(nodes, body)
    at_primary.close()
    at_backup.close()
    assert got(at_backup) & set(range(10, 15)) == set()  # after the failback: the primary only
    assert got(at_primary) | got(at_backup) == set(range(15))
    assert rows(runtime, "errors").empty and runtime.stats["pub"].errors == 0
    assert f"failover: 127.0.0.1:{primary.port} (primary) lost, 127.0.0.1:{backup.port}" in (
        caplog.text
    )


def test_sink_fails_a_batch_when_no_broker_is_back_then_goes_on(
    broker: Broker, prefix: str, pair: Pair
) -> None:
    """Both brokers gone for longer than `reconnect_timeout`: that batch fails to the error
    port naming both; the next one goes to the broker that is back."""
    primary, backup = pair()
    at_backup: SessionSubscriber | None = None
    nodes = source(broker.port, f"{prefix}/+", batch_size=1)
    nodes["src"]["wires"] = {"out": ["pub"]}
    nodes["pub"] = {
        "type": "mqtt_out",
        "broker_host": hosts(primary, backup),
        "topic": "out/{sensor}",
        "qos": 1,
        "reconnect_timeout": 1.0,
        "wires": {"error": ["errors"]},
    }
    del nodes["cap"]

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        nonlocal at_backup
        await asyncio.to_thread(primary.stop)
        await asyncio.to_thread(backup.stop)
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/s1", 1)])
        await until(lambda: len(rows(runtime, "errors")) >= 1, task, 20)
        await asyncio.to_thread(backup.start)
        at_backup = await asyncio.to_thread(SessionSubscriber, backup.port, "out/#")
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/s2", 2)])
        await until(lambda: [p["value"] for _, p, _ in at_backup.got] == [2.0], task, 20)

    runtime = run_with(nodes, body)
    if at_backup is not None:
        at_backup.close()
    (failed,) = runtime.node("errors").batches
    assert failed.frame["value"].tolist() == [1.0]
    error = failed.error or ""
    assert "no broker answered" in error, error
    assert f"127.0.0.1:{primary.port}: " in error and f"127.0.0.1:{backup.port}: " in error


def test_both_down_at_start_retries_naming_every_broker(pair: Pair) -> None:
    primary, backup = pair()
    primary.stop()
    backup.stop()
    nodes = source(0, "plant/#", broker_host=hosts(primary, backup))
    del nodes["src"]["broker_port"]
    nodes["src"]["retry"] = {"initial": 0.2, "max": 0.5}

    async def main() -> Runtime:
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["src"].state == "retrying", task)
        error = runtime.stats["src"].last_error
        assert "MQTT connection failed: no broker answered: " in error
        assert f"127.0.0.1:{primary.port}: " in error and f"127.0.0.1:{backup.port}: " in error
        await asyncio.to_thread(backup.start)
        await until(lambda: f"127.0.0.1:{backup.port} (backup 1 of 2)" in text(runtime), task)
        await asyncio.to_thread(publish, backup.port, [("plant/a", 1)])
        await until(lambda: len(rows(runtime)) == 1, task)
        runtime.stop()
        await task
        return runtime

    runtime = asyncio.run(main())
    assert runtime.stats["src"].counters["failovers"] == 1


def test_seed_connector_fails_over_in_read_data(pair: Pair) -> None:
    from flowengine.connectors import MQTTConnector

    primary, backup = pair()
    mqtt = MQTTConnector({"broker_host": hosts(primary, backup), "topic": "plant/#"})
    try:
        assert mqtt.connect()
        assert mqtt.active_server == f"127.0.0.1:{primary.port} (primary)"
        publish(primary.port, [("plant/a", 1)])
        wait_until(lambda: (data := mqtt.read_data()) is not None and len(data) == 1)
        kill(primary)
        wait_until(lambda: mqtt.read_data() is None and mqtt.failovers == 1, 20, "the failover")
        assert mqtt.active_server == f"127.0.0.1:{backup.port} (backup 1 of 2)"
        publish(backup.port, [("plant/a", 2)])
        seen: list[float] = []

        def read() -> bool:
            data = mqtt.read_data()
            seen.extend([] if data is None else data["value"].tolist())
            return bool(seen)

        wait_until(read, 10, "the backup's message")
        assert seen == [2.0]
    finally:
        mqtt.disconnect()


@pytest.mark.parametrize(
    ("hosts_", "message"),
    [
        ("[a, 'mqtt://b']", "entry [1]: 'mqtt://b': give host or host:port (no scheme)"),
        ("[a, 'b:99999']", "entry [1]: "),
        ("[a, 'bad host']", "entry [1]: 'bad host': 'bad host' is not a host name or address"),
        ("[a, 'b:1884', 'b:1884']", "entry [2]: 'b:1884' is listed twice"),
        ("[]", "list at least one broker"),
    ],
)
def test_bad_entry_is_named_by_its_index(hosts_: str, message: str) -> None:
    flow = f"version: 1\nnodes:\n  src:\n    type: mqtt_in\n    broker_host: {hosts_}\n"
    flow += "    wires: [out]\n  out: {type: debug}\n"
    (error,) = [str(p) for p in check_text(flow, path="f.yaml").errors]
    assert error.startswith("f.yaml:5:5: node 'src': field 'broker_host': ") and message in error


def test_list_entries_carry_their_ports() -> None:
    cfg = MqttConnection(broker_host=["a", "b:1884", "[::1]:1885", "::1"], broker_port=1999)
    assert cfg.brokers() == [("a", 1999), ("b", 1884), ("::1", 1885), ("::1", 1999)]
    assert MqttConnection(broker_host="a").brokers() == [("a", 1883)]  # one value, as ever
    with pytest.raises(ValueError, match="put the port in broker_port"):
        MqttConnection(broker_host="a:1884")  # the single value keeps its rule


def test_a_list_round_trips_through_flowengine_validate(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "version: 1\nnodes:\n  src:\n    type: mqtt_in\n    broker_host:\n"
        "      - mqtt-a.plant.local\n      - mqtt-b.plant.local:1884\n"
        "    failback_interval: 10\n    wires: [out]\n"
        "  pub:\n    type: mqtt_out\n    broker_host: [mqtt-a, 'mqtt-b:1884']\n"
        "    topic: out/{sensor}\n"
        "  out: {type: debug}\n"
    )
    done = flowengine("validate", str(path), env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    path.write_text(path.read_text().replace("mqtt-b.plant.local:1884", "mqtt://b"))
    done = flowengine("validate", str(path), env=dict(os.environ))
    assert done.returncode != 0
    assert "entry [1]: 'mqtt://b': give host or host:port" in done.stdout + done.stderr


def test_editor_form_edits_a_broker_list(tmp_path: Path) -> None:
    """`str | list[str]` falls to the form's YAML control; one host or a list both work."""
    pytest.importorskip("nicegui")
    from nicegui import app
    from nicegui.storage import Storage

    from flowengine.ui.app import Editor, EditorConfig
    from flowengine.ui.canvas import FlowCanvas
    from flowengine.ui.fields import from_yaml
    from tests.helpers.uiuser import editing, run

    Storage.path = tmp_path / "storage"  # what the editor tests' storage_in_tmp fixture does
    app.storage = Storage()
    path = tmp_path / "f.yaml"
    path.write_text(
        "version: 1\nnodes:\n  src:\n    type: mqtt_in\n    wires: [out]\n  out: {type: debug}\n"
    )
    editor = Editor(EditorConfig(path, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            user.find(FlowCanvas).trigger("change", {"op": "open", "node": "src"})
            await user.should_see("(default: 127.0.0.1)", marker="field-broker_host")
            area = user.find(marker="prop-broker_host").elements.pop()
            assert from_yaml(area.value) is None  # not set: the default applies
            area.value = "- mqtt-a\n- mqtt-b:1884\n"
            user.find(marker="prop-broker_host").trigger("blur")
            assert editor.model.form_values("src")["broker_host"] == ["mqtt-a", "mqtt-b:1884"]
            area.value = "mqtt-c"
            user.find(marker="prop-broker_host").trigger("blur")
            assert editor.model.form_values("src")["broker_host"] == "mqtt-c"
            area.value = "[mqtt-a, 'mqtt://b']"
            user.find(marker="prop-broker_host").trigger("blur")
            await user.should_see("entry [1]: 'mqtt://b'")

    run(scenario)
