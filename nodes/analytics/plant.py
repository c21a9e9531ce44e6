"""``flowengine simulate``: the simulated line as an OPC UA server (and MQTT publisher).

asyncua (and paho for ``--mqtt``) is imported inside the commands, so ``flowengine --help``
stays fast and works without the ``opcua`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
import time
from typing import Any

import click

from flowengine.extras import LibraryMissing, require

#: Namespace URI of the simulated plant; it is the first registered namespace, so index 2.
PLANT_NS = "urn:flowengine:steelsim"


def _asyncua() -> Any:
    try:
        return require("asyncua", "opcua")
    except LibraryMissing as exc:
        raise click.ClickException(str(exc)) from None


async def serve_plant(
    host: str,
    port: int,
    *,
    rate: float,
    seed: int,
    sensors: int,
    mqtt: str | None = None,
    duration: float | None = None,
) -> None:
    """Serve the simulated line; each tick writes every sensor with its source timestamp."""
    asyncua = _asyncua()
    ua = asyncua.ua
    from flowengine.nodes.analytics.steelsim import LineConfig, SteelLine

    model = SteelLine(LineConfig(seed=seed, rate=rate, sensors=sensors))
    server = asyncua.Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://{host}:{port}/")
    server.set_server_name("flowengine simulated steel line")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(PLANT_NS)
    line = await server.nodes.objects.add_object(ua.NodeId("Line3", idx), f"{idx}:Line3")
    first = model.generate(0, 1).values[0]
    node_ids = []
    for spec, value in zip(model.sensors, first, strict=True):
        var = await line.add_variable(spec.node_id, f"{idx}:{spec.name}", float(value))
        node_ids.append(var.nodeid)
    publisher = _mqtt_publisher(mqtt) if mqtt else None
    await server.start()
    url = f"opc.tcp://{host}:{port}"
    click.echo(f"serving {len(node_ids)} sensors of line3 at {url} (ns={idx};i=1001..)")
    sys.stdout.flush()
    start = time.time()
    tick, block, values = 0, max(1, int(rate)), None
    try:
        while duration is None or time.time() - start < duration:
            if values is None or tick % block == 0:
                values = model.generate(tick, block).values
            due = start + tick / rate
            if (delay := due - time.time()) > 0:
                await asyncio.sleep(delay)
            stamp = dt.datetime.fromtimestamp(due, dt.UTC)
            row = values[tick % block]
            for node_id, value in zip(node_ids, row, strict=True):
                dv = ua.DataValue(ua.Variant(float(value), ua.VariantType.Double))
                dv.SourceTimestamp = dv.ServerTimestamp = stamp
                await server.write_attribute_value(node_id, dv)
            if publisher is not None:
                for spec, value in zip(model.sensors, row, strict=True):
                    payload = {"sensor": spec.name, "value": float(value)}
                    payload["timestamp"] = stamp.isoformat()
                    publisher.publish(f"plant/line3/{spec.name}", json.dumps(payload))
            tick += 1
    finally:
        if publisher is not None:
            publisher.loop_stop()
            publisher.disconnect()
        with contextlib.suppress(Exception):
            await server.stop()


def _mqtt_publisher(address: str) -> Any:
    try:
        mqtt = require("paho.mqtt.client", "mqtt")
    except LibraryMissing as exc:
        raise click.ClickException(str(exc)) from None
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "1883")
    # a unique id: a second simulator on the same broker must not take over the first's session
    client_id = f"flowengine-simulate-{os.getpid()}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    try:
        client.connect(host or "127.0.0.1", int(port or 1883))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"MQTT connection failed: {address}: {exc}") from None
    client.loop_start()
    return client


@click.command()
@click.option(
    "--opcua",
    "address",
    default="127.0.0.1:4840",
    show_default=True,
    help="HOST:PORT to serve OPC UA on.",
)
@click.option("--mqtt", default=None, help="Also publish readings as JSON to HOST:PORT.")
@click.option("--rate", default=1.0, show_default=True, help="Updates per second.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the plant model.")
@click.option("--sensors", default=6, show_default=True, help="Number of sensors (nodes).")
@click.option("--duration", default=None, type=float, help="Seconds, then exit (default: run).")
def simulate(
    address: str, mqtt: str | None, rate: float, seed: int, sensors: int, duration: float | None
) -> None:
    """Serve the simulated steel line as an OPC UA server (ns=2;i=1001 furnace temperature,
    1002 roll force, 1003 cooling water flow, then the rest), optionally publishing to MQTT."""
    host, _, port = address.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_plant(
                host or "127.0.0.1",
                int(port),
                rate=rate,
                seed=seed,
                sensors=sensors,
                mqtt=mqtt,
                duration=duration,
            )
        )
