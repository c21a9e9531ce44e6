"""MQTT against real brokers: the seed API, the source and sink nodes, restarts, MQTT 5, TLS.

The shared Mosquitto on 127.0.0.1:1883 is used when it listens (never stopped); otherwise an
embedded amqtt broker (MQTT 3.1.1 only). Restart, auth and TLS cases start private Mosquittos.
Topics carry a random prefix so concurrent users of the shared broker do not disturb the tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pandas as pd
import pytest

from flowengine.connectors import MQTTConnector
from flowengine.nodes.mqtt.config import MqttConnection
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from tests.helpers.mqtt import Broker, publish, rows, run_with, source
from tests.helpers.peers import free_port, port_open, self_signed, until, wait_until

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HAVE_MOSQUITTO = os.path.exists(MOSQUITTO)


class PrivateMosquitto:
    """A Mosquitto process of our own on a free port (to stop, restart, or secure)."""

    def __init__(self, tmp: Path, extra: str = "", anonymous: bool = True) -> None:
        self.port = free_port()
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        store = tmp / f"store-{self.port}"
        store.mkdir()
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous {str(anonymous).lower()}\n"
            f"persistence true\npersistence_location {store}/\n"
            # as root, mosquitto would drop to user `mosquitto`, which cannot write tmp_path
            f"user {getpass.getuser()}\n{extra}"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_until(lambda: port_open(self.port), 10, f"mosquitto on {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)
        wait_until(lambda: not port_open(self.port), 10, "mosquitto to stop")


class Subscriber:
    """A paho client collecting (topic, payload, retain) for sink tests."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[tuple[str, Any, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.got.append(
            (m.topic, json.loads(m.payload) if m.payload else None, m.retain)
        )
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- the seed's library API -----------------------------------------------------------------
def test_seed_usage_example_runs_as_written(broker: Broker):
    mqtt_config = {
        "broker_host": broker.host,
        "broker_port": broker.port,
        "topic": "sensors/+",
        "qos": 1,
    }
    sensor = f"sensors/t{uuid.uuid4().hex[:8]}"  # our own level under the seed's filter

    mqtt_conn = MQTTConnector(mqtt_config)
    if mqtt_conn.connect():
        # Messages accumulate in background (the seed sleeps 5 s; we poll until they are here)
        publish(broker.port, [(sensor, {"value": 1.5}), (sensor, 2.5)])
        seen: list[pd.DataFrame] = []

        def arrived() -> bool:
            data = mqtt_conn.read_data()  # Get accumulated messages
            if data is not None:
                seen.append(data[data["topic"] == sensor])
            return sum(len(f) for f in seen) >= 2

        wait_until(arrived, 10, "the messages")
        mqtt_conn.disconnect()
    data = pd.concat(seen, ignore_index=True)
    assert data["value"].tolist() == [1.5, 2.5]
    assert data["sensor"].tolist() == [sensor, sensor]
    assert set(data.columns) >= {"timestamp", "sensor", "value", "source"}
    assert data["source"].unique().tolist() == ["MQTTConnector"]
    assert not mqtt_conn.is_connection_active()


def test_seed_auth_failure_message(private_mosquitto: Any, caplog: Any):
    secured = private_mosquitto(anonymous=False)  # no password file: every login is refused
    conn = MQTTConnector(
        {"broker_host": "127.0.0.1", "broker_port": secured.port, "topic": "a/#", "qos": 1}
        | {"username": "mqtt_user", "password": "mqtt_password", "keep_alive": 60}
    )
    with caplog.at_level(logging.ERROR):
        assert conn.connect() is False
    assert "MQTT connection failed, return code: 5" in caplog.text
    conn.disconnect()


def test_seed_connector_logs_bad_json(broker: Broker, prefix: str, caplog: Any):
    conn = MQTTConnector({"broker_host": broker.host, "broker_port": broker.port, "topic": prefix})
    assert conn.connect()
    got: list[pd.DataFrame] = []

    def arrived() -> bool:
        data = conn.read_data()
        if data is not None:
            got.append(data)
        return bool(got)

    with caplog.at_level(logging.WARNING):
        publish(broker.port, [(prefix, "not json"), (prefix, "7")])
        wait_until(arrived, 10, "the good message")
    conn.disconnect()
    assert got[0]["value"].tolist() == [7.0]
    assert f"Could not parse JSON payload on topic {prefix}" in caplog.text


# ---- the source node --------------------------------------------------------------------------
def test_wildcards_payload_shapes_topic_levels_and_epoch_ms(broker: Broker, prefix: str):
    ms = 1_700_000_000_123
    messages = [
        (f"{prefix}/line3/furnace_temp", {"value": 1250.5, "timestamp": ms, "line": "3"}),
        (f"{prefix}/line3/pressure", 4.25),
        (f"{prefix}/line4/deep/flow", [{"value": 1, "timestamp": ms + 1}, {"value": 2}]),
        (f"{prefix}/other", {"value": 9}),  # matches neither filter
    ]
    nodes = source(
        broker.port,
        f"{prefix}/line3/+",
        topics=[f"{prefix}/line4/#"],
        sensor_from="topic[-1]",
        timestamp_format="epoch_ms",
    )

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, broker.port, messages)
        await until(lambda: len(rows(runtime)) >= 4, task)

    runtime = run_with(nodes, body)
    got = rows(runtime).sort_values("value", ignore_index=True)
    assert got["value"].tolist() == [1.0, 2.0, 4.25, 1250.5]
    assert got["sensor"].tolist() == ["flow", "flow", "pressure", "furnace_temp"]
    assert got["timestamp"][0] == pd.Timestamp(ms + 1, unit="ms", tz="UTC")
    assert got["timestamp"][3] == pd.Timestamp("2023-11-14T22:13:20.123Z")
    assert got["line"][3] == "3" and got["topic"][2] == f"{prefix}/line3/pressure"
    now = pd.Timestamp.now(tz="UTC")
    assert abs(now - got["timestamp"][2]) < pd.Timedelta(seconds=30)  # receive time
    assert rows(runtime, "errors").empty


def test_sensor_from_field_and_index_and_iso_time(broker: Broker, prefix: str):
    stamp = "2026-01-02T03:04:05+01:00"
    nodes = source(
        broker.port, f"{prefix}/#", sensor_from="id", value_field="v", timestamp_field="t"
    )

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        payloads = [{"id": "roll_speed", "v": "3.5", "t": stamp}, {"v": 1}]
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/x", p) for p in payloads])
        await until(lambda: len(rows(runtime)) >= 2, task)

    got = rows(run_with(nodes, body))
    assert got["sensor"].tolist() == ["roll_speed", f"{prefix}/x"]
    assert got["value"].tolist() == [3.5, 1.0]
    assert got["timestamp"][0] == pd.Timestamp("2026-01-02T02:04:05Z")


def test_batching_many_messages_few_batches_exact_rows(broker: Broker, prefix: str):
    n = 3000
    nodes = source(broker.port, f"{prefix}/+", batch_size=500, batch_interval=5.0, linger=5.0)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        # The shared broker keeps Mosquitto's default max_queued_messages 1000: a subscriber
        # that falls further behind (a loaded test machine) loses messages there, not here. So
        # publish in rounds of 500 and let each round arrive (see docs/connectors-mqtt.md).
        for start in range(0, n, 500):
            msgs = [(f"{prefix}/s{i % 7}", {"value": i}) for i in range(start, start + 500)]
            await asyncio.to_thread(publish, broker.port, msgs)
            await until(lambda end=start + 500: len(rows(runtime)) >= end, task, 20)

    runtime = run_with(nodes, body)
    batches = runtime.node("cap").batches
    got = rows(runtime)
    assert len(got) == n and sorted(got["value"]) == list(range(n))
    assert all(len(b) <= 500 for b in batches)
    assert len(batches) <= n // 500 + 4  # full batches, a few time-bounded ones under load
    assert runtime.stats["src"].rows_out == n


def test_a_lone_message_goes_on_at_once_not_after_the_batch_interval(broker: Broker, prefix: str):
    """linger 0 (the default): once nothing more is waiting, what arrived is sent; the
    batch interval is only the longest a row may wait while messages keep coming."""
    nodes = source(broker.port, prefix, batch_size=10_000, batch_interval=60.0)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, broker.port, [(prefix, 1.5)])
        await until(lambda: len(rows(runtime)) >= 1, task, 10)  # not the 60 s interval

    runtime = run_with(nodes, body)
    assert rows(runtime)["value"].tolist() == [1.5]


def test_time_bounded_batch(broker: Broker, prefix: str):
    nodes = source(broker.port, prefix, batch_size=10_000, batch_interval=0.3, linger=0.3)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, broker.port, [(prefix, i) for i in range(20)])
        await until(lambda: len(rows(runtime)) >= 20, task, 5)  # no 10,000 rows needed

    runtime = run_with(nodes, body)
    assert len(runtime.node("cap").batches) <= 3


def test_bad_payloads_go_to_the_error_port_and_the_flow_goes_on(
    broker: Broker, prefix: str, caplog: Any
):
    nodes = source(broker.port, f"{prefix}/+")
    bad = ["{oops", '{"value": "hot"}', "[]", "true", b"\xff\xfe"]

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        msgs: list[tuple[str, Any]] = [(f"{prefix}/ok", 1)]
        msgs += [(f"{prefix}/bad", p) for p in bad] + [(f"{prefix}/ok", 2)]
        await asyncio.to_thread(publish, broker.port, msgs)
        await until(lambda: len(rows(runtime)) >= 2 and len(rows(runtime, "errors")) >= 5, task)

    with caplog.at_level(logging.WARNING):
        runtime = run_with(nodes, body)
    assert rows(runtime)["value"].tolist() == [1.0, 2.0]
    errors = rows(runtime, "errors")
    assert errors["topic"].unique().tolist() == [f"{prefix}/bad"]
    assert errors["payload"].tolist()[:4] == bad[:4]
    assert runtime.node("errors").batches[0].error == "Could not parse JSON payload"
    assert runtime.stats["src"].counters["parse_errors"] == 5
    assert f"Could not parse JSON payload on topic {prefix}/bad" in caplog.text
    assert runtime.stats["src"].state == "stopped"  # ran to the end, never failed


def test_mqtt5_source(broker: Broker, prefix: str):
    if broker.kind != "mosquitto":
        pytest.skip("amqtt speaks MQTT 3.1.1 only; MQTT 5 needs Mosquitto")
    nodes = source(broker.port, f"{prefix}/#", protocol="5", qos=2)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/a", 1), (f"{prefix}/b", 2)], 2)
        await until(lambda: len(rows(runtime)) >= 2, task)

    assert sorted(rows(run_with(nodes, body))["value"]) == [1.0, 2.0]


def test_config_validation():
    with pytest.raises(ValueError, match="needs a fixed client_id"):
        MqttConnection(clean_session=False)
    with pytest.raises(ValueError, match="keyfile given without certfile"):
        MqttConnection(keyfile="k.pem")
    cfg = MqttConnection(ca_file="ca.pem", certfile="c.pem", keyfile="k.pem", insecure=True)
    assert cfg.ca_file == "ca.pem" and cfg.insecure
    checked = check_text({"src": {"type": "mqtt_in", "topic": "a/#", "sensor_from": "topic[x]"}})
    assert not checked.ok and "topic[2]" in str(checked.problems)


# ---- the sink node --------------------------------------------------------------------------
def test_sink_topic_template_retain_qos1(broker: Broker, prefix: str):
    sub = Subscriber(broker.port, f"{prefix}/#")
    rows_in = [
        {"timestamp": "2026-01-01T00:00:00Z", "line": "3", "sensor": "temp", "value": 1300.0},
        {"timestamp": "2026-01-01T00:00:01Z", "line": "4", "sensor": "pressure", "value": 5.5},
    ]
    nodes = {
        "inj": {"type": "inject", "rows": rows_in, "wires": ["pub", "pub_batch"]},
        "pub": {
            "type": "mqtt_out",
            "broker_port": broker.port,
            "topic": prefix + "/alerts/{line}/{sensor}",
            "qos": 1,
            "retain": True,
        },
        "pub_batch": {
            "type": "mqtt_out",
            "broker_port": broker.port,
            "topic": prefix + "/batch",
            "mode": "batch",
        },
    }
    runtime = Runtime(check_text(nodes))
    report = asyncio.run(asyncio.wait_for(runtime.run(), 20))
    assert report.drained and runtime.stats["pub"].counters["published"] == 2
    wait_until(lambda: len(sub.got) >= 3, 10, "the published messages")
    sub.close()
    by_topic = {t: p for t, p, _ in sub.got}
    temp = by_topic[f"{prefix}/alerts/3/temp"]
    assert temp["value"] == 1300.0 and temp["timestamp"].startswith("2026-01-01T00:00:00")
    assert by_topic[f"{prefix}/alerts/4/pressure"]["value"] == 5.5
    assert [r["sensor"] for r in by_topic[f"{prefix}/batch"]] == ["temp", "pressure"]
    # retained: a late subscriber still gets the alerts, flagged as retained
    late = Subscriber(broker.port, f"{prefix}/alerts/#")
    wait_until(lambda: len(late.got) >= 2, 10, "the retained messages")
    late.close()
    assert all(retain for _, _, retain in late.got)
    clear = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # leave no retained messages behind
    clear.connect("127.0.0.1", broker.port)
    clear.loop_start()
    for topic, _, _ in late.got:
        clear.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    clear.disconnect()
    clear.loop_stop()


# ---- restart, TLS ---------------------------------------------------------------------------
def test_broker_restart_resumes_without_help(private_mosquitto: Any):
    peer = private_mosquitto()
    client_id = f"fe-restart-{uuid.uuid4().hex[:6]}"
    nodes = source(peer.port, "plant/#", clean_session=False, client_id=client_id, qos=1)
    nodes["src"]["retry"] = {"initial": 0.5, "max": 1.0}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, peer.port, [("plant/a", i) for i in range(10)])
        await until(lambda: len(rows(runtime)) >= 10, task)
        await asyncio.to_thread(peer.stop)
        await until(lambda: runtime.stats["src"].state == "retrying", task, 10)
        await asyncio.to_thread(peer.start)
        await asyncio.to_thread(publish, peer.port, [("plant/a", i) for i in range(10, 20)])
        await until(lambda: len(rows(runtime)) >= 20, task, 20)
        assert runtime.stats["src"].state == "ok"

    runtime = run_with(nodes, body)
    values = rows(runtime)["value"].tolist()
    # QoS 1 is at least once: acknowledgements still on their way when the broker went down
    # are redelivered by its persisted session, so a value may come twice, none may be missing
    assert set(values) == set(range(20)) and len(values) <= 30
    assert runtime.stats["src"].retries >= 1


def test_tls_with_a_self_signed_broker(private_mosquitto: Any, tmp_path: Path):
    cert, key = self_signed(tmp_path)
    peer = private_mosquitto(f"certfile {cert}\nkeyfile {key}\n")
    nodes = source(peer.port, "secure/#", ca_file=str(cert))

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, peer.port, [("secure/x", 42)], 1, ca_certs=str(cert))
        await until(lambda: len(rows(runtime)) >= 1, task)

    assert rows(run_with(nodes, body))["value"].tolist() == [42.0]
    # without the CA the handshake fails with a connection error the runtime retries
    checked = check_text(source(peer.port, "secure/#", tls=True))
    runtime = Runtime(checked)

    async def refused() -> None:
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["src"].state == "retrying", task, 10)
        runtime.stop()
        await task

    asyncio.run(refused())
    assert "MQTT connection failed" in (runtime.stats["src"].last_error or "")


# ---- payload parsing without a broker -------------------------------------------------------
def parsed(payloads: list[Any], topic: str = "plant/line3/temp", **cfg: Any) -> Any:
    from flowengine.nodes.mqtt.config import MqttParsing
    from flowengine.nodes.mqtt.parse import Parser

    parser = Parser(MqttParsing(**cfg), "src")
    received = 1_800_000_000 * 10**9
    for p in payloads:
        parser.add(topic, p if isinstance(p, bytes) else json.dumps(p).encode(), received)
    return parser.take_rows(), parser.take_bad()


def test_parser_shapes_and_times():
    good, bad = parsed(
        [
            {"temp": 1.5, "pressure": 2, "timestamp": 1_700_000_000},  # a map of readings
            {"value": 3, "timestamp": 1_700_000_000.5},  # epoch s with a fraction
            {"value": 4, "timestamp": "2026-01-01T00:00:00"},  # ISO without offset: UTC
            7,
        ],
        sensor_from=1,
    )
    assert good["sensor"].tolist() == ["temp", "pressure", "line3", "line3", "line3"]
    assert good["value"].tolist() == [1.5, 2.0, 3.0, 4.0, 7.0]
    assert good["timestamp"].tolist()[:3] == [
        pd.Timestamp("2023-11-14T22:13:20Z"),
        pd.Timestamp("2023-11-14T22:13:20Z"),
        pd.Timestamp("2023-11-14T22:13:20.5Z"),
    ]
    assert good["timestamp"][3] == pd.Timestamp("2026-01-01T00:00:00Z")
    assert good["timestamp"][4] == pd.Timestamp(1_800_000_000, unit="s", tz="UTC")
    assert bad is None


def test_parser_rejects_what_is_not_a_reading():
    good, bad = parsed(
        [
            *[b"NaN-ish", {"value": 1, "timestamp": "yesterday"}, {"value": 1, "timestamp": 1e30}],
            *[{"value": None}, {"name": "x"}, [1, "a"], None, b"\xff"],
        ],
        timestamp_format="auto",
    )
    assert good is None
    assert len(bad) == 8 and set(bad.columns) == {"timestamp", "topic", "payload", "error"}
    _, bad = parsed([{"value": 1, "timestamp": 1_700_000_000}], timestamp_format="iso")
    assert "not ISO 8601" in bad["error"][0]


# ---- mutual TLS, host name checks -----------------------------------------------------------
def _pki(tmp: Path) -> dict[str, str]:
    """A CA, server certs for 127.0.0.1 and for another host name, and a client cert + key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(
        cn: str, issuer: Any, signer: Any, ca: bool = False, san: list[Any] | None = None
    ) -> tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(issuer or name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer or key, hashes.SHA256()), key

    ca, ca_key = issue("flowengine test CA", None, None, ca=True)
    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    files: dict[str, str] = {}

    def save(label: str, cert: Any, key: Any) -> None:
        files[label] = str(tmp / f"{label}.crt")
        (tmp / f"{label}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            files[f"{label}_key"] = str(tmp / f"{label}.key")
            (tmp / f"{label}.key").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

    save("ca", ca, None)
    save("server", *issue("127.0.0.1", ca.subject, ca_key, san=local))
    save("wrong", *issue("wrong.example", ca.subject, ca_key, san=[x509.DNSName("wrong.example")]))
    save("client", *issue("flowengine-client", ca.subject, ca_key))
    return files


async def _retrying(nodes: dict[str, Any]) -> Runtime:
    """Run a flow whose source cannot connect until it shows `retrying`, then stop it."""
    runtime = Runtime(check_text(nodes))
    task = asyncio.create_task(runtime.run())
    await until(lambda: runtime.stats["src"].state == "retrying", task, 10)
    runtime.stop()
    await asyncio.wait_for(task, 20)
    return runtime


def test_mutual_tls_client_certificate(private_mosquitto: Any, tmp_path: Path):
    pki = _pki(tmp_path)
    peer = private_mosquitto(
        f"cafile {pki['ca']}\ncertfile {pki['server']}\nkeyfile {pki['server_key']}\n"
        "require_certificate true\n"
    )
    mutual = {"ca_file": pki["ca"], "certfile": pki["client"], "keyfile": pki["client_key"]}
    nodes = source(peer.port, "secure/#", **mutual)
    tls = {"ca_certs": pki["ca"], "certfile": pki["client"], "keyfile": pki["client_key"]}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        msgs = [("secure/furnace", {"value": 1250.5}), ("secure/roll", 3)]
        await asyncio.to_thread(publish, peer.port, msgs, 1, **tls)
        await until(lambda: len(rows(runtime)) >= 2, task)

    got = rows(run_with(nodes, body))
    assert sorted(got["value"]) == [3.0, 1250.5]
    # the CA alone (no client certificate): the broker refuses, the node retries
    runtime = asyncio.run(_retrying(source(peer.port, "secure/#", ca_file=pki["ca"])))
    assert "MQTT connection failed" in (runtime.stats["src"].last_error or "")
    assert rows(runtime).empty


def test_insecure_skips_the_host_name_check(private_mosquitto: Any, tmp_path: Path):
    pki = _pki(tmp_path)  # the broker's certificate names wrong.example, we dial 127.0.0.1
    peer = private_mosquitto(f"certfile {pki['wrong']}\nkeyfile {pki['wrong_key']}\n")
    runtime = asyncio.run(_retrying(source(peer.port, "secure/#", ca_file=pki["ca"])))
    assert "MQTT connection failed" in (runtime.stats["src"].last_error or "")
    nodes = source(peer.port, "secure/#", ca_file=pki["ca"], insecure=True)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        tls = {"ca_certs": pki["ca"]}
        client_ok = threading.Event()

        def send() -> None:  # the test's publisher needs the same leniency
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            client.tls_set(**tls)
            client.tls_insecure_set(True)
            client.connect("127.0.0.1", peer.port)
            client.loop_start()
            client.publish("secure/x", "42", qos=1).wait_for_publish(10)
            client.disconnect()
            client.loop_stop()
            client_ok.set()

        await asyncio.to_thread(send)
        assert client_ok.is_set()
        await until(lambda: len(rows(runtime)) >= 1, task)

    assert rows(run_with(nodes, body))["value"].tolist() == [42.0]


# ---- the sink across a broker restart -------------------------------------------------------
class SessionSubscriber(Subscriber):
    """A subscriber with a persistent session: the restarted broker keeps what it missed."""

    def __init__(self, port: int, topic: str) -> None:
        self.got = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"fe-sub-{uuid.uuid4().hex[:8]}",
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.2, 1)
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.got.append(
            (m.topic, json.loads(m.payload), m.retain)
        )
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)


def _relay(source_port: int, topic: str, sink_port: int, **sink: Any) -> dict[str, Any]:
    """mqtt_in (steady broker) -> mqtt_out (the broker we restart)."""
    nodes = source(source_port, topic, batch_size=1)
    nodes["src"]["wires"] = {"out": ["pub"]}
    nodes["pub"] = {
        "type": "mqtt_out",
        "broker_port": sink_port,
        "topic": "out/{sensor}",
        "qos": 1,
        **sink,
        "wires": {"error": ["errors"]},
    }
    del nodes["cap"]
    return nodes


def test_sink_waits_for_the_broker_after_a_restart(
    broker: Broker, prefix: str, private_mosquitto: Any
):
    peer = private_mosquitto()
    sub = SessionSubscriber(peer.port, "out/#")
    nodes = _relay(broker.port, f"{prefix}/+", peer.port)
    seen_states: set[str] = set()

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/s{i}", i) for i in range(5)])
        await until(lambda: len(sub.got) >= 5, task)
        await asyncio.to_thread(peer.stop)  # killed mid-flow
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/s{i}", i) for i in range(5, 10)])

        def retrying() -> bool:
            seen_states.add(runtime.stats["pub"].state)
            return runtime.stats["pub"].state == "retrying"

        await until(retrying, task, 10)
        await asyncio.to_thread(peer.start)  # same port, same persistence
        await until(lambda: len({p["value"] for _, p, _ in sub.got}) >= 10, task, 15)
        await until(lambda: runtime.stats["pub"].state == "ok", task, 5)

    runtime = run_with(nodes, body)
    sub.close()
    values = sorted({p["value"] for _, p, _ in sub.got})
    assert values == list(range(10))  # QoS 1 is at least once: duplicates allowed, no loss
    assert runtime.stats["pub"].errors == 0 and rows(runtime, "errors").empty
    assert runtime.stats["pub"].counters["published"] >= 10
    assert runtime.stats["pub"].counters["reconnect_waits"] >= 1


def test_sink_fails_to_the_error_port_after_the_reconnect_timeout(
    broker: Broker, prefix: str, private_mosquitto: Any
):
    peer = private_mosquitto()
    nodes = _relay(broker.port, f"{prefix}/+", peer.port, reconnect_timeout=1.0)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await asyncio.to_thread(peer.stop)
        await asyncio.to_thread(publish, broker.port, [(f"{prefix}/s1", 1)])
        await until(lambda: runtime.stats["pub"].state == "retrying", task, 10)
        await until(lambda: len(rows(runtime, "errors")) >= 1, task, 10)

    runtime = run_with(nodes, body)
    errors = runtime.node("errors").batches
    assert errors[0].frame["value"].tolist() == [1.0]
    assert "not back within 1s" in (errors[0].error or "")
    assert runtime.stats["pub"].state == "error" and runtime.stats["pub"].errors == 1
