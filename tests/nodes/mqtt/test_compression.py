"""Compressed MQTT payloads through a real broker: one flow's `mqtt_out` (gzip, zstd) read by
another flow's `mqtt_in` (`decompress: auto`), what a plain subscriber receives, and hostile
payloads (corrupt, cut off, a bomb, the wrong codec) on the error port without a restart.

The broker is the shared Mosquitto on 127.0.0.1:1883 when it listens, else embedded amqtt.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from flowengine.runtime import Runtime
from flowengine.testing import check_text
from tests.helpers.mqtt import Broker, publish, rows, run_with, source
from tests.helpers.peers import until

zstandard = pytest.importorskip("zstandard", reason="zstd needs flowengine[zstd] (zstandard)")

MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}


class RawSubscriber:
    """A plain paho client keeping each payload as received (bytes)."""

    def __init__(self, port: int, topic: str) -> None:
        self.got: list[bytes] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.got.append(bytes(m.payload))
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def decode(payload: bytes, codec: str) -> bytes:
    if codec == "gzip":
        return gzip.decompress(payload)
    return bytes(zstandard.ZstdDecompressor().decompress(payload))


def encode(data: bytes, codec: str) -> bytes:
    if codec == "gzip":
        return gzip.compress(data)
    return bytes(zstandard.ZstdCompressor().compress(data))


@pytest.mark.parametrize(
    ("codec", "mode"), [("gzip", "batch"), ("zstd", "batch"), ("zstd", "rows")]
)
def test_two_flows_interoperate_through_compressed_payloads(
    broker: Broker, prefix: str, codec: str, mode: str
) -> None:
    readings = [
        {"timestamp": "2026-01-01T00:00:00Z", "sensor": f"t{i % 4}", "value": i + 0.25}
        for i in range(40)
    ]
    sender = {
        "inj": {"type": "inject", "rows": readings, "wires": ["pub"]},
        "pub": {
            "type": "mqtt_out",
            "broker_port": broker.port,
            "topic": prefix + "/line3/{sensor}",
            "mode": mode,
            "compression": codec,
            "compression_level": 5,
        },
    }
    receiver = source(broker.port, f"{prefix}/line3/+", sensor_from="sensor")
    raw = RawSubscriber(broker.port, f"{prefix}/line3/+")

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        report = await asyncio.wait_for(Runtime(check_text(sender)).run(), 20)
        assert report.drained
        await until(lambda: len(rows(runtime)) >= len(readings), task)
        # the other subscriber is another client: its copies may still be on their way
        await until(lambda: len(raw.got) >= (4 if mode == "batch" else 40), task)

    try:
        runtime = run_with(receiver, body)
    finally:
        raw.close()
    got = rows(runtime).sort_values("value", ignore_index=True)
    assert got["value"].tolist() == [r["value"] for r in readings]
    assert got["sensor"].tolist() == [r["sensor"] for r in readings]
    assert (got["quality"] == "good").all() and rows(runtime, "errors").empty
    # what any other subscriber gets: compressed JSON it must decompress itself
    assert len(raw.got) == (4 if mode == "batch" else 40)
    assert all(p.startswith(MAGIC[codec]) for p in raw.got)
    assert b'"sensor":"t0"' in decode(raw.got[0], codec) or mode == "rows"


def test_hostile_compressed_payloads_go_to_the_error_port_and_the_flow_goes_on(
    broker: Broker, prefix: str
) -> None:
    good = encode(b'{"value": 1}', "gzip")
    cut = encode(b'{"value": 2, "pad": "' + b"x" * 500 + b'"}', "zstd")[:-6]
    corrupt = bytearray(encode(b'{"value": 3, "pad": "' + b"y" * 500 + b'"}', "gzip"))
    corrupt[-8] ^= 0xFF  # its CRC-32 no longer matches
    bomb = zstandard.ZstdCompressor(level=19).compress(b" " * (64 << 20))  # 64 MiB in ~2 kB
    bad = [cut, bytes(corrupt), bomb, MAGIC["zstd"] + b"garbage", MAGIC["gzip"]]
    nodes = source(broker.port, f"{prefix}/+", max_payload_bytes=100_000)

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        msgs: list[tuple[str, Any]] = [(f"{prefix}/ok", good)]
        msgs += [(f"{prefix}/bad", p) for p in bad]
        msgs += [(f"{prefix}/ok", encode(b"[4, 5]", "zstd")), (f"{prefix}/ok", '{"value": 6}')]
        await asyncio.to_thread(publish, broker.port, msgs)
        await until(lambda: len(rows(runtime)) >= 4 and len(rows(runtime, "errors")) >= 5, task)

    runtime = run_with(nodes, body)
    assert rows(runtime)["value"].tolist() == [1.0, 4.0, 5.0, 6.0]
    errors = rows(runtime, "errors")["error"].tolist()
    assert "zstd data is cut off" in errors[0]
    assert "corrupt gzip data" in errors[1]
    assert "zstd data decodes to more than 100000 bytes" in errors[2]
    assert "corrupt zstd data" in errors[3]
    assert "gzip data is cut off" in errors[4]
    stats = runtime.stats["src"]
    assert stats.counters["parse_errors"] == 5 and stats.retries == 0
    assert stats.state == "stopped"  # ran to the end, never failed


def test_a_named_codec_requires_it_and_none_reads_payloads_as_they_are(
    broker: Broker, prefix: str
) -> None:
    nodes = source(broker.port, f"{prefix}/gz", decompress="gzip")
    nodes["raw"] = {
        **nodes["src"],
        "decompress": "none",
        "wires": {"out": ["rawcap"], "error": ["rawerr"]},
    }
    nodes["rawcap"], nodes["rawerr"] = {"type": "capture"}, {"type": "capture"}

    async def body(runtime: Runtime, task: asyncio.Task[Any]) -> None:
        await until(lambda: runtime.stats["raw"].state == "ok", task, what="raw subscribed")
        msgs = [(f"{prefix}/gz", encode(b"7", "gzip")), (f"{prefix}/gz", "8")]
        await asyncio.to_thread(publish, broker.port, msgs)
        await until(lambda: len(rows(runtime, "errors")) + len(rows(runtime)) >= 2, task)
        await until(lambda: len(rows(runtime, "rawerr")) + len(rows(runtime, "rawcap")) >= 2, task)

    runtime = run_with(nodes, body)
    assert rows(runtime)["value"].tolist() == [7.0]
    assert "not gzip data (it starts with 38)" in rows(runtime, "errors")["error"].iloc[0]
    assert rows(runtime, "rawcap")["value"].tolist() == [8.0]  # `none`: gzip bytes are no JSON
    assert len(rows(runtime, "rawerr")) == 1


def test_config_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def problems(node: dict[str, Any]) -> str:
        return " | ".join(p.message for p in check_text({"n": node}).problems)

    assert "field 'decompress'" in problems({"type": "mqtt_in", "decompress": "brotli"})
    out = {"type": "mqtt_out", "topic": "a/b", "compression": "gzip", "compression_level": 10}
    assert "level 10 is out of range for gzip (1 to 9)" in problems(out)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    assert "Install 'flowengine[zstd]'" in problems({"type": "mqtt_in", "decompress": "zstd"})
    assert "Install 'flowengine[zstd]'" in problems(
        {"type": "mqtt_out", "topic": "a/b", "compression": "zstd"}
    )
    assert "flowengine[zstd]" not in problems({"type": "mqtt_in"})  # auto needs it only for zstd
