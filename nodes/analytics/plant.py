"""``flowengine simulate``: the simulated line as an OPC UA server (and MQTT publisher), and
through other families as a Modbus, S7 or EtherNet/IP server.

asyncua (and paho for ``--mqtt``) is imported inside the commands, so ``flowengine --help``
stays fast and works without the ``opcua`` extra. Other protocols plug in under the
``flowengine.simulators`` entry point group (``PlantServer``), so this family imports none.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any, Protocol

import click

from flowengine.extras import LibraryMissing, require

#: Namespace URI of the simulated plant; it is the first registered namespace, so index 2.
PLANT_NS = "urn:flowengine:steelsim"


#: The entry point group of the protocol servers ``simulate`` can start besides OPC UA.
SIMULATORS = "flowengine.simulators"


class PlantServer(Protocol):
    """A protocol's view of the simulated line; constructed with no arguments.

    ``start`` binds ``host:port`` and publishes one value per sensor (``sensors`` are the
    plant's sensor names in order, ``units`` their units) and returns the line ``simulate``
    prints; ``update`` is called once a tick with every sensor's value; ``stop`` closes it.
    """

    async def start(
        self, host: str, port: int, sensors: Sequence[str], units: Sequence[str]
    ) -> str:
        """Serve; return what to print ("serving 6 sensors as Modbus at 127.0.0.1:5020 ...")."""
        ...

    async def update(self, stamp: dt.datetime, values: Sequence[float]) -> None:
        """Make ``values`` (one per sensor, in order) what clients read from now on."""
        ...

    async def stop(self) -> None:
        """Close the server."""
        ...


def plant_server(name: str) -> PlantServer:
    """A new server of the family registered as ``name``, or a ClickException that says which
    extra to install."""
    for ep in entry_points(group=SIMULATORS):
        if ep.name == name:
            try:
                return ep.load()()  # type: ignore[no-any-return]
            except LibraryMissing as exc:
                raise click.ClickException(str(exc)) from None
            except Exception as exc:
                raise click.ClickException(f"the {name} simulator failed to load: {exc}") from None
    raise click.ClickException(f"no {name} simulator is installed")


def _asyncua() -> Any:
    try:
        return require("asyncua", "opcua")
    except LibraryMissing as exc:
        raise click.ClickException(str(exc)) from None


class OpcuaPlant:
    """The line as an OPC UA server: ``ns=2;i=1001..`` under Objects/Line3, each value written
    with its source timestamp."""

    def __init__(self) -> None:
        self.ua: Any = None
        self.server: Any = None
        self.node_ids: list[Any] = []

    async def start(
        self, host: str, port: int, sensors: Sequence[str], units: Sequence[str]
    ) -> str:
        from flowengine.nodes.analytics.steelspec import sensor_specs

        asyncua = _asyncua()
        self.ua = ua = asyncua.ua
        self.server = server = asyncua.Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://{host}:{port}/")
        server.set_server_name("flowengine simulated steel line")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(PLANT_NS)
        line = await server.nodes.objects.add_object(ua.NodeId("Line3", idx), f"{idx}:Line3")
        for spec in sensor_specs(len(sensors)):
            var = await line.add_variable(spec.node_id, f"{idx}:{spec.name}", 0.0)
            self.node_ids.append(var.nodeid)
        await server.start()
        url = f"opc.tcp://{host}:{port}"
        return f"serving {len(sensors)} sensors of line3 at {url} (ns={idx};i=1001..)"

    async def update(self, stamp: dt.datetime, values: Sequence[float]) -> None:
        ua = self.ua
        for node_id, value in zip(self.node_ids, values, strict=True):
            dv = ua.DataValue(ua.Variant(value, ua.VariantType.Double))
            dv.SourceTimestamp = dv.ServerTimestamp = stamp
            await self.server.write_attribute_value(node_id, dv)

    async def stop(self) -> None:
        await self.server.stop()


class MqttPlant:
    """The line published to an MQTT broker: JSON ``{sensor, value, timestamp}`` on
    ``plant/line3/<sensor>``."""

    def __init__(self) -> None:
        self.client: Any = None
        self.sensors: Sequence[str] = ()

    async def start(
        self, host: str, port: int, sensors: Sequence[str], units: Sequence[str]
    ) -> str:
        try:
            mqtt = require("paho.mqtt.client", "mqtt")
        except LibraryMissing as exc:
            raise click.ClickException(str(exc)) from None
        # a unique id: a second simulator on the same broker must not take over the first's session
        client_id = f"flowengine-simulate-{os.getpid()}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        try:
            client.connect(host, port)
        except OSError as exc:
            raise click.ClickException(f"MQTT connection failed: {host}:{port}: {exc}") from None
        client.loop_start()
        self.client, self.sensors = client, sensors
        return f"publishing {len(sensors)} sensors to mqtt://{host}:{port} as plant/line3/<sensor>"

    async def update(self, stamp: dt.datetime, values: Sequence[float]) -> None:
        for name, value in zip(self.sensors, values, strict=True):
            payload = {"sensor": name, "value": value, "timestamp": stamp.isoformat()}
            self.client.publish(f"plant/line3/{name}", json.dumps(payload))

    async def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def serve_plant(
    host: str,
    port: int,
    *,
    rate: float,
    seed: int,
    sensors: int,
    mqtt: str | None = None,
    duration: float | None = None,
    extra: dict[str, str] | None = None,
    opcua: bool = True,
) -> None:
    """Serve the simulated line; each tick gives every server every sensor's value and its
    source timestamp.

    ``extra`` maps a simulator's name (``modbus``) to the ``HOST:PORT`` it serves on.
    """
    from flowengine.nodes.analytics.steelsim import LineConfig, SteelLine

    wanted: dict[str, str] = {"opcua": f"{host}:{port}"} if opcua else {}
    if mqtt:
        wanted["mqtt"] = mqtt if ":" in mqtt else f"{mqtt}:1883"
    wanted.update(extra or {})
    if not opcua and not extra:
        raise click.ClickException("--opcua off needs another server (--modbus, --s7, --enip)")
    model = SteelLine(LineConfig(seed=seed, rate=rate, sensors=sensors))
    servers = await _start_all(model, wanted)
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
            row = [float(v) for v in values[tick % block]]
            for server in servers:
                await server.update(stamp, row)
            tick += 1
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                await server.stop()


def _server(name: str) -> PlantServer:
    if name == "opcua":
        return OpcuaPlant()
    return MqttPlant() if name == "mqtt" else plant_server(name)


async def _start_all(model: Any, wanted: dict[str, str]) -> list[PlantServer]:
    """Start every requested server on its ``HOST:PORT`` with the line's first values (a client
    never reads a placeholder); print each one's line. One that cannot start stops those
    already started and says why."""
    started: list[PlantServer] = []
    names = [s.name for s in model.sensors]
    units = [s.unit for s in model.sensors]
    first = [float(v) for v in model.generate(0, 1).values[0]]
    now = dt.datetime.now(dt.UTC)
    for name, address in wanted.items():
        host, _, port = address.rpartition(":")
        server = _server(name)
        try:
            click.echo(await server.start(host or "127.0.0.1", int(port), names, units))
            started.append(server)
            await server.update(now, first)
        except (OSError, ValueError, click.ClickException) as exc:
            for other in started:
                with contextlib.suppress(Exception):
                    await other.stop()
            if isinstance(exc, click.ClickException):
                raise
            raise click.ClickException(f"cannot serve {name} at {address}: {exc}") from None
    return started


@click.command()
@click.option(
    "--opcua",
    "address",
    default="127.0.0.1:4840",
    show_default=True,
    help="HOST:PORT to serve OPC UA on ('off': no OPC UA server).",
)
@click.option("--mqtt", default=None, help="Also publish readings as JSON to HOST:PORT.")
@click.option("--modbus", default=None, help="Also serve the line as a Modbus TCP server.")
@click.option("--s7", default=None, help="Also serve the line as a Siemens S7 PLC (HOST:PORT).")
@click.option("--enip", default=None, help="Also serve the line as EtherNet/IP tags (HOST:PORT).")
@click.option("--rate", default=1.0, show_default=True, help="Updates per second.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the plant model.")
@click.option("--sensors", default=6, show_default=True, help="Number of sensors (nodes).")
@click.option("--duration", default=None, type=float, help="Seconds, then exit (default: run).")
def simulate(
    address: str,
    mqtt: str | None,
    modbus: str | None,
    s7: str | None,
    enip: str | None,
    rate: float,
    seed: int,
    sensors: int,
    duration: float | None,
) -> None:
    """Serve the simulated steel line as an OPC UA server (ns=2;i=1001 furnace temperature,
    1002 roll force, 1003 cooling water flow, then the rest), optionally publishing to MQTT and
    serving the same values over Modbus TCP, S7 or EtherNet/IP."""
    extra = {k: v for k, v in {"modbus": modbus, "s7": s7, "enip": enip}.items() if v}
    opcua = address.lower() != "off"
    host, _, port = address.rpartition(":") if opcua else ("", "", "0")
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
                extra=extra,
                opcua=opcua,
            )
        )
