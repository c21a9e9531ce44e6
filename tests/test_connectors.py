"""The seed document's connector tests, where its readers look for them:

    python -m pytest tests/test_connectors.py -v
    python -m pytest tests/test_connectors.py::TestOPCUAConnector -v

Each class runs one connector of ``flowengine.connectors`` through the seed's API against a
real peer on 127.0.0.1: connect / read_data / disconnect / is_connection_active, the config
keys of the seed's "Configuration" section, its error messages and its standardized columns
(timestamp, sensor or node_id, value, source). The protocol details (subscriptions, TLS,
retries, restarts, poison values) are tested per family under tests/nodes/<family>/, whose
servers these tests reuse. TestDemoScripts runs examples/ against ``flowengine simulate``.
"""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from flowengine.connectors import DatabaseConnector, MQTTConnector, OPCUAConnector, RESTConnector
from tests.helpers.cli import REPO
from tests.helpers.databases import postgres_missing, scratch_postgres
from tests.helpers.mqtt import Broker, publish
from tests.helpers.peers import free_port, port_open, wait_until

#: The seed's "Data Format": every connector's frame has these (the sensor column is
#: ``sensor``, or ``node_id`` for OPC UA, or what a database query names it).
STANDARD = {"timestamp", "value", "source"}


def check_standard(frame: pd.DataFrame | None, sensor: str = "sensor") -> pd.DataFrame:
    assert isinstance(frame, pd.DataFrame) and not frame.empty
    assert STANDARD | {sensor} <= set(frame.columns), list(frame.columns)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert pd.api.types.is_float_dtype(frame["value"])
    return frame


def silent_listener() -> socket.socket:
    """A TCP port that accepts connections and never answers (a hung server)."""
    return socket.create_server(("127.0.0.1", 0))


# ---- OPC UA -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ua_server() -> Iterator[Any]:
    """The OPC UA tests' asyncua server (tests/nodes/opcua): ns=2;i=1001 Temperature 1200.0,
    1002 Pressure 20.0, 1003 FlowRate 900.0 with a fixed source timestamp; user operator."""
    pytest.importorskip("asyncua", reason="asyncua missing: pip install 'flowengine[opcua]'")
    from tests.nodes.opcua.test_opcua import UaServer

    server = UaServer(free_port()).start()
    yield server
    server.close()


class TestOPCUAConnector:
    def test_seed_yaml_config_lifecycle_and_columns(self, ua_server: Any) -> None:
        from tests.nodes.opcua.test_opcua import SOURCE_TIME

        config = {  # the seed's "OPC UA Configuration", pointed at the test server
            "server_url": ua_server.url,
            "nodes": ["ns=2;i=1001", "ns=2;i=1002", "ns=2;i=1003"],
            "sampling_interval": 1.0,
            "username": "operator",
            "password": "s3cret",
        }
        opcua = OPCUAConnector(config)
        assert not opcua.is_connection_active()
        assert opcua.connect() and opcua.is_connection_active()
        first, second = opcua.read_data(), opcua.read_data()  # each read polls every node
        assert opcua.disconnect() and not opcua.is_connection_active()
        frame = check_standard(first, "node_id")
        assert frame["node_id"].tolist() == ["ns=2;i=1001", "ns=2;i=1002", "ns=2;i=1003"]
        assert frame["value"].tolist() == [1200.0, 20.0, 900.0]
        assert frame["timestamp"].iloc[2] == SOURCE_TIME  # the server's source timestamp
        assert (frame["quality"] == "good").all()
        assert set(frame["source"]) == {"OPCUAConnector"}  # the seed: the connector's name
        assert second is not None and second["value"].tolist() == [1200.0, 20.0, 900.0]

    def test_named_nodes_name_the_sensor_column(self, ua_server: Any) -> None:
        nodes = {"ns=2;i=1001": "furnace_temp", "ns=2;i=1002": "roll_force"}
        with OPCUAConnector({"server_url": ua_server.url, "nodes": nodes}) as opcua:
            frame = check_standard(opcua.read_data())
        assert frame["sensor"].tolist() == ["furnace_temp", "roll_force"]

    def test_connection_timeout_is_the_seeds_message(self, caplog: Any) -> None:
        with silent_listener() as listener:
            port = listener.getsockname()[1]
            opcua = OPCUAConnector(
                {"server_url": f"opc.tcp://127.0.0.1:{port}", "nodes": ["ns=2;i=1001"]}
                | {"timeout": 0.5}
            )
            with caplog.at_level(logging.ERROR):
                assert opcua.connect() is False
        assert "Failed to connect to OPC UA server: timeout" in caplog.text
        assert not opcua.is_connection_active()
        opcua.disconnect()

    def test_wrong_password_and_reads_before_connect(self, ua_server: Any, caplog: Any) -> None:
        opcua = OPCUAConnector(
            {"server_url": ua_server.url, "nodes": ["ns=2;i=1001"]}
            | {"username": "operator", "password": "wrong"}
        )
        with caplog.at_level(logging.ERROR):
            assert opcua.read_data() is None
            assert opcua.connect() is False
        assert "OPC UA connector is not connected" in caplog.text
        assert "Failed to connect to OPC UA server" in caplog.text
        assert "wrong" not in caplog.text  # the password is never logged
        opcua.disconnect()


# ---- MQTT -------------------------------------------------------------------------------------
class TestMQTTConnector:
    def test_seed_yaml_config_accumulates_between_reads(self, broker: Broker) -> None:
        prefix = f"production/{uuid.uuid4().hex[:8]}/sensors"  # the seed's topic, made unique
        config = {  # the seed's "MQTT Configuration" without credentials (an open broker)
            "broker_host": broker.host,
            "broker_port": broker.port,
            "topic": f"{prefix}/+",
            "qos": 1,
            "keep_alive": 60,
        }
        mqtt = MQTTConnector(config)
        assert not mqtt.is_connection_active()
        assert mqtt.connect() and mqtt.is_connection_active()
        assert mqtt.read_data() is None  # nothing has arrived yet
        publish(broker.port, [(f"{prefix}/temp", {"value": 1250.5}), (f"{prefix}/press", 2.5)])
        seen: list[pd.DataFrame] = []

        def both() -> bool:
            if (data := mqtt.read_data()) is not None:
                seen.append(data)
            return sum(len(f) for f in seen) >= 2

        wait_until(both, 10, "the two messages")
        assert mqtt.read_data() is None  # each message is returned once
        assert mqtt.disconnect() and not mqtt.is_connection_active()
        frame = check_standard(pd.concat(seen, ignore_index=True))
        assert sorted(zip(frame["sensor"], frame["value"], strict=True)) == [
            (f"{prefix}/press", 2.5),
            (f"{prefix}/temp", 1250.5),
        ]
        assert set(frame["source"]) == {"MQTTConnector"}

    def test_broker_down_is_a_logged_false(self, caplog: Any) -> None:
        port = free_port()
        mqtt = MQTTConnector({"broker_host": "127.0.0.1", "broker_port": port, "topic": "a/+"})
        with caplog.at_level(logging.ERROR):
            assert mqtt.connect() is False
        assert "Failed to connect to MQTT" in caplog.text and f"127.0.0.1:{port}" in caplog.text
        assert not mqtt.is_connection_active()
        mqtt.disconnect()


# ---- REST -------------------------------------------------------------------------------------
@pytest.fixture
def api() -> Iterator[Any]:
    """The REST tests' HTTP server (tests/nodes/rest): /sensors/<name> answers
    {"value", "timestamp"}, /bearer wants a token."""
    pytest.importorskip("uvicorn", reason="uvicorn missing: pip install 'flowengine[test]'")
    from tests.nodes.rest.test_rest import ApiServer

    server = ApiServer(free_port()).start()
    yield server
    server.stop()


class TestRESTConnector:
    def test_seed_yaml_config_lifecycle_and_columns(self, api: Any) -> None:
        from tests.nodes.rest.test_rest import T0

        config = {  # the seed's "REST Configuration", pointed at the test server
            "base_url": api.url,
            "endpoints": ["sensors/temperature", "sensors/pressure"],
            "headers": {"Authorization": "Bearer your-token", "Content-Type": "application/json"},
            "timeout": 10.0,
            "poll_interval": 5.0,
        }
        rest = RESTConnector(config)
        assert not rest.is_connection_active()
        assert rest.connect() and rest.is_connection_active()
        frame = check_standard(rest.read_data())
        assert rest.disconnect() and not rest.is_connection_active()
        assert frame["sensor"].tolist() == ["temperature", "pressure"]  # the endpoint's last part
        assert frame["value"].tolist() == [1250.0, 2.1]
        assert (frame["timestamp"] == T0).all() and set(frame["source"]) == {"RESTConnector"}

    def test_http_errors_and_a_dead_api_are_logged_nones(self, api: Any, caplog: Any) -> None:
        rest = RESTConnector({"base_url": api.url, "endpoints": ["bearer"], "retries": 0})
        assert rest.connect()
        with caplog.at_level(logging.WARNING):
            assert rest.read_data() is None  # 401: no token
        assert "bearer: HTTP 401" in caplog.text
        rest.disconnect()
        caplog.clear()
        dead = RESTConnector(
            {"base_url": f"http://127.0.0.1:{free_port()}", "endpoints": ["x"], "retries": 0}
        )
        assert dead.connect()  # as in the seed, connect opens a session; a read finds out
        with caplog.at_level(logging.ERROR):
            assert dead.read_data() is None
        assert "Failed to read from REST server" in caplog.text
        dead.disconnect()


# ---- databases --------------------------------------------------------------------------------
#: The seed's "Database Configuration" query.
SEED_QUERY = """
    SELECT timestamp, sensor_id, value
    FROM sensor_readings
    WHERE timestamp > NOW() - INTERVAL '1 hour'
    ORDER BY timestamp DESC
"""


def fill(url: str, rows: list[tuple[pd.Timestamp, str, float]]) -> None:
    """A ``sensor_readings`` table as the seed's query expects; SQLite keeps times as text in
    SQLAlchemy's format (naive UTC), which the connector reads back as UTC times."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        kind = "timestamptz" if pg else "TEXT"
        conn.execute(
            sa.text(f"CREATE TABLE sensor_readings (timestamp {kind}, sensor_id TEXT, value REAL)")
        )
        conn.execute(
            sa.text("INSERT INTO sensor_readings VALUES (:t, :s, :v)"),
            [
                {"t": t if pg else t.tz_convert(None).isoformat(sep=" "), "s": s, "v": v}
                for t, s, v in rows
            ],
        )
    engine.dispose()


@pytest.fixture(scope="class")
def scratch_pg() -> Iterator[str]:
    if reason := postgres_missing():
        pytest.skip(reason)
    with scratch_postgres() as url:
        yield url


class TestDatabaseConnector:
    def test_sqlite_lifecycle_and_columns(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'sensors.db'}"
        t0 = pd.Timestamp("2026-01-01T06:00:00Z")
        fill(url, [(t0, "furnace", 1250.0), (t0 + pd.Timedelta(1, "s"), "furnace", 1251.0)])
        query = SEED_QUERY.replace("NOW() - INTERVAL '1 hour'", "'2026-01-01'")  # SQLite's dialect
        db = DatabaseConnector({"connection_string": url, "query": query, "poll_interval": 30.0})
        assert not db.is_connection_active()
        assert db.connect() and db.is_connection_active()
        frame = check_standard(db.read_data(), "sensor_id")  # columns as the query names them
        assert db.disconnect() and not db.is_connection_active()
        assert frame["value"].tolist() == [1251.0, 1250.0]  # ORDER BY timestamp DESC
        assert frame["timestamp"].tolist() == [t0 + pd.Timedelta(1, "s"), t0]
        assert set(frame["source"]) == {"DatabaseConnector"}

    def test_bad_query_and_unreachable_server_are_logged(self, tmp_path: Path, caplog: Any) -> None:
        db = DatabaseConnector({"connection_string": "sqlite://", "query": "SELECT * FROM nope"})
        assert db.connect()
        with caplog.at_level(logging.ERROR):
            assert db.read_data() is None
        assert "Failed to read from database server" in caplog.text and "nope" in caplog.text
        db.disconnect()
        with silent_listener() as listener:
            port = listener.getsockname()[1]
            url = f"postgresql://user:password@127.0.0.1:{port}/sensors?connect_timeout=1"
            dead = DatabaseConnector({"connection_string": url, "query": "SELECT 1"})
            with caplog.at_level(logging.ERROR):
                assert dead.connect() is False
        assert "Failed to connect to database server" in caplog.text
        assert "password@" not in caplog.text  # the URL's password is never logged
        dead.disconnect()

    def test_seed_yaml_query_on_postgresql(self, scratch_pg: str) -> None:
        now = pd.Timestamp.now(tz="UTC").floor("s")
        fill(
            scratch_pg,
            [
                (now - pd.Timedelta(5, "min"), "furnace", 1250.0),
                (now - pd.Timedelta(1, "min"), "furnace", 1260.0),
                (now - pd.Timedelta(2, "h"), "furnace", 1100.0),  # older than the hour
            ],
        )
        db = DatabaseConnector({"connection_string": scratch_pg, "query": SEED_QUERY})
        assert db.connect()
        frame = check_standard(db.read_data(), "sensor_id")
        assert db.disconnect()
        assert frame["value"].tolist() == [1260.0, 1250.0]
        assert frame["timestamp"].tolist() == [
            now - pd.Timedelta(1, "min"),
            now - pd.Timedelta(5, "min"),
        ]


# ---- the seed's demo scripts --------------------------------------------------------------------
EXAMPLES = REPO / "examples"


def example(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang fails the test instead of holding the suite
        cwd=EXAMPLES,
    )


@pytest.fixture(scope="class")
def plant(broker: Broker) -> Iterator[str]:
    """``flowengine simulate`` at 10 Hz on a free port, publishing to the MQTT broker too."""
    pytest.importorskip("asyncua", reason="asyncua missing: pip install 'flowengine[opcua]'")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "flowengine.cli", "simulate"),
            *("--opcua", f"127.0.0.1:{port}", "--rate", "10"),
            *("--mqtt", f"{broker.host}:{broker.port}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 30, "flowengine simulate")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class TestDemoScripts:
    def test_demo_connectors(self, plant: str, broker: Broker) -> None:
        mqtt = f"{broker.host}:{broker.port}"
        run = example("demo_connectors.py", "--opcua", plant, "--mqtt", mqtt, "--seconds", "2")
        assert run.returncode == 0, run.stdout + run.stderr
        out = run.stdout
        for title in ("OPCUAConnector", "RESTConnector", "DatabaseConnector", "MQTTConnector"):
            assert f"=== {title}" in out
        assert "is_connection_active() before connect: False" in out
        assert out.count("connect(): True; is_connection_active(): True") == 4
        assert "disconnect(): True; is_connection_active(): False" in out
        assert re.search(r"opcua\.read_data\(\): \d+ rows", out) and "ns=2;i=1003" in out
        assert re.search(r"2\d\d\d-\d\d-\d\d [\d:.]+\+00:00\s+temperature\s+1[12]\d\d\.", out)
        assert re.search(r"mqtt\.read_data\(\): \d+ rows", out) and "strip_thickness" in out
        assert out.rstrip().endswith("done")

    def test_integration_example_predicts_and_alerts(self, plant: str) -> None:
        # threshold 0: every scored window alerts, so the alert branch runs within seconds
        args = ("--opcua", plant, "--seconds", "5", "--threshold", "0")
        run = example("integration_example_connectors.py", *args)
        assert run.returncode == 0, run.stdout + run.stderr
        out = run.stdout
        assert f"connected to opc.tcp://{plant} (6 nodes)" in out
        assert re.search(r"model line3@[0-9a-f]{12} from .*line3\.joblib; alert above 0\n", out)
        scores = re.findall(r"defect_probability (\d\.\d{3}) \(line3@", out)
        assert len(scores) >= 2 and all(0 <= float(s) <= 1 for s in scores)
        assert "ALERT" in out and "top: " in out
        done = re.search(r"done: (\d+) readings, (\d+) windows scored, (\d+) alerts", out)
        assert done and int(done[1]) >= 6 * 10 and int(done[2]) >= 2 and int(done[3]) >= 2

    @pytest.mark.parametrize("name", ["demo_connectors.py", "integration_example_connectors.py"])
    def test_no_server_is_a_message_and_status_1(self, name: str) -> None:
        run = example(name, "--opcua", f"127.0.0.1:{free_port()}", "--seconds", "2", timeout=60)
        assert run.returncode == 1
        assert "Failed to connect to OPC UA server" in run.stderr
        assert "start one with `flowengine simulate`" in run.stderr
        assert "Traceback" not in run.stderr
