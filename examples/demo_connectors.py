"""The seed's connector demo: connect, read, disconnect with each connector, against the
simulated line.

    flowengine simulate &                          # opc.tcp://127.0.0.1:4840
    python examples/demo_connectors.py             # OPC UA, then REST and SQLite fed from it
    flowengine simulate --mqtt 127.0.0.1:1883 &    # with a broker running: MQTT too
    python examples/demo_connectors.py --mqtt 127.0.0.1:1883

OPCUAConnector reads the seed's node ids from the server. The REST and database sections need
no server of their own: the demo serves the OPC UA readings as a small HTTP API (the seed's
``temperature`` and ``pressure`` endpoints) and writes them to an SQLite file, then reads them
back with RESTConnector and DatabaseConnector. MQTTConnector runs when --mqtt names a broker
that ``flowengine simulate --mqtt`` publishes to. Exits 1 with a message when a server cannot
be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from flowengine.connectors import (
    BaseDataConnector,
    DatabaseConnector,
    MQTTConnector,
    OPCUAConnector,
    RESTConnector,
)

#: The seed's three nodes, and the names its comments give them (used for the REST endpoints).
NODES = {"ns=2;i=1001": "temperature", "ns=2;i=1002": "pressure", "ns=2;i=1003": "flow_rate"}
COLUMNS = ["timestamp", "sensor", "value", "quality", "source"]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--opcua",
        default=os.environ.get("FLOWENGINE_OPCUA", "127.0.0.1:4840"),
        help="HOST:PORT of the OPC UA server (env FLOWENGINE_OPCUA; default %(default)s)",
    )
    parser.add_argument(
        "--mqtt",
        default=os.environ.get("FLOWENGINE_MQTT"),
        help="HOST:PORT of the broker `flowengine simulate --mqtt` publishes to (env "
        "FLOWENGINE_MQTT; default: no MQTT section)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of OPC UA reads")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds to wait to connect")
    return parser.parse_args(argv)


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def show(name: str, data: pd.DataFrame | None, columns: list[str] | None = None) -> None:
    if data is None:
        print(f"{name}.read_data(): None (nothing to read)")
        return
    shown = data[[c for c in columns or data.columns if c in data.columns]]
    print(f"{name}.read_data(): {len(data)} rows, columns {list(data.columns)}")
    print(shown.to_string(index=False, max_rows=12), flush=True)


def opcua_demo(url: str, seconds: float, timeout: float) -> pd.DataFrame | None:
    """The seed's OPC UA example, one read per sampling interval for ``seconds``; None when
    the server cannot be reached."""
    section(f"OPCUAConnector: {url}")
    interval = 1.0
    opcua_config = {"server_url": url, "nodes": list(NODES), "sampling_interval": interval}
    opcua = OPCUAConnector(opcua_config | {"timeout": timeout})
    print(f"is_connection_active() before connect: {opcua.is_connection_active()}")
    if not opcua.connect():
        return None
    print(f"connect(): True; is_connection_active(): {opcua.is_connection_active()}")
    frames = []
    deadline = time.monotonic() + seconds
    while True:
        data = opcua.read_data()  # Returns pandas DataFrame
        if data is not None:
            frames.append(data)
        if time.monotonic() + interval > deadline:
            break
        time.sleep(interval)
    print(f"{len(frames)} reads in {seconds:g} s")
    readings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    show("opcua", readings if frames else None, [*COLUMNS, "node_id"])
    closed = opcua.disconnect()
    print(f"disconnect(): {closed}; is_connection_active(): {opcua.is_connection_active()}")
    return readings


@contextmanager
def sensor_api(latest: dict[str, dict[str, object]]) -> Iterator[str]:
    """A local stand-in for the seed's https://api.sensors.com: GET /sensors/<name>."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.rstrip("/").rsplit("/", 1)[-1]
            found = name in latest
            body = latest[name] if found else {"detail": f"no sensor {name!r}"}
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:  # no access log on the console
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def rest_demo(readings: pd.DataFrame) -> bool:
    newest = readings.sort_values("timestamp").groupby("node_id").last()
    latest = {
        NODES[node]: {"value": float(row["value"]), "timestamp": row["timestamp"].isoformat()}
        for node, row in newest.iterrows()
    }
    with sensor_api(latest) as api:
        section(f"RESTConnector: {api}/sensors (the newest OPC UA values)")
        rest_config = {
            "base_url": f"{api}/sensors",
            "endpoints": ["temperature", "pressure"],
            "headers": {"Authorization": "Bearer token"},
            "timeout": 10.0,
        }
        return run(RESTConnector(rest_config), "rest", COLUMNS)


def database_demo(readings: pd.DataFrame, folder: Path) -> bool:
    url = f"sqlite:///{folder / 'sensors.db'}"
    table = readings.rename(columns={"sensor": "sensor_id"})[["timestamp", "sensor_id", "value"]]
    engine = sa.create_engine(url)
    table.to_sql("sensor_readings", engine, index=False)
    engine.dispose()
    section(f"DatabaseConnector: {url} (the OPC UA readings, written by this demo)")
    db_config = {
        "connection_string": url,
        "query": "SELECT timestamp, sensor_id, value FROM sensor_readings ORDER BY timestamp DESC",
    }
    return run(DatabaseConnector(db_config), "db")


def mqtt_demo(address: str, seconds: float) -> bool:
    host, _, port = address.rpartition(":")
    section(f"MQTTConnector: {address}, topic plant/line3/+")
    mqtt_config = {"broker_host": host, "broker_port": int(port), "topic": "plant/line3/+"}
    mqtt = MQTTConnector(mqtt_config | {"qos": 1})
    if not mqtt.connect():
        return False
    print(f"connect(): True; is_connection_active(): {mqtt.is_connection_active()}")
    time.sleep(seconds)  # Messages accumulate in background
    show("mqtt", mqtt.read_data(), COLUMNS)  # Get accumulated messages
    print(f"disconnect(): {mqtt.disconnect()}")
    return True


def run(connector: BaseDataConnector, name: str, columns: list[str] | None = None) -> bool:
    """connect, read_data, disconnect, as the seed's examples do."""
    if not connector.connect():
        return False
    print(f"connect(): True; is_connection_active(): {connector.is_connection_active()}")
    show(name, connector.read_data(), columns)
    print(f"disconnect(): {connector.disconnect()}")
    return True


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # ours say it in the seed's words
    url = f"opc.tcp://{args.opcua}"
    readings = opcua_demo(url, args.seconds, args.timeout)
    if readings is None:
        print(
            f"error: no OPC UA server at {url}; start one with `flowengine simulate` "
            "(or point --opcua / FLOWENGINE_OPCUA at yours)",
            file=sys.stderr,
        )
        return 1
    if readings.empty:
        print(f"error: {url} sent no values for {', '.join(NODES)}", file=sys.stderr)
        return 1
    ok = rest_demo(readings)
    with tempfile.TemporaryDirectory() as folder:
        ok = database_demo(readings, Path(folder)) and ok
    if args.mqtt and not mqtt_demo(args.mqtt, min(args.seconds, 5.0)):
        print(f"error: no MQTT broker at {args.mqtt}", file=sys.stderr)
        ok = False
    print("\ndone" if ok else "\ndone, with errors (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
