"""OPC UA against a real asyncua server started by the tests (no protocol mocks)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from flowengine.node import Source
from flowengine.registry import missing_requirements
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from tests.helpers.peers import free_port, until

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua

SOURCE_TIME = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
USERS = {"operator": "s3cret"}


class UserManager:
    """Accepts the users in USERS (and anonymous sessions)."""

    def get_user(
        self, iserver: Any, username: Any = None, password: Any = None, certificate: Any = None
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        if username is None:
            return User(role=UserRole.User)
        return User(role=UserRole.User) if USERS.get(username) == password else None


class UaServer:
    """An asyncua server on its own loop in a thread, so flows can run with asyncio.run."""

    def __init__(self, port: int, certs: tuple[Path, Path] | None = None) -> None:
        self.port = port
        self.url = f"opc.tcp://127.0.0.1:{port}/"
        self.certs = certs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Any = None

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        server = asyncua.Server(user_manager=UserManager())
        await server.init()
        server.set_endpoint(self.url)
        if self.certs:
            await server.load_certificate(str(self.certs[0]))
            await server.load_private_key(str(self.certs[1]))
            server.set_security_policy(
                [
                    ua.SecurityPolicyType.NoSecurity,
                    ua.SecurityPolicyType.Basic256Sha256_Sign,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace("urn:flowengine:test")
        line = await server.nodes.objects.add_object(ua.NodeId("Line3", idx), f"{idx}:Line3")
        double = ua.VariantType.Double
        for i, (name, value) in enumerate([("Temperature", 1200.0), ("Pressure", 20.0)]):
            await line.add_variable(ua.NodeId(1001 + i, idx), f"{idx}:{name}", value, double)
        flow = await line.add_variable(ua.NodeId(1003, idx), f"{idx}:FlowRate", 900.0, double)
        await flow.write_value(ua.DataValue(ua.Variant(900.0, double), SourceTimestamp=SOURCE_TIME))
        await line.add_variable(ua.NodeId("Line3.Speed", idx), f"{idx}:Speed", 7.5, double)
        bad = await line.add_variable(ua.NodeId(1009, idx), f"{idx}:Broken", 0.0, double)
        await bad.write_value(
            ua.DataValue(
                ua.Variant(0.0, double), StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure)
            )
        )
        await line.add_variable(ua.NodeId(1010, idx), f"{idx}:Burst", 0.0, double)
        level = await line.add_variable(ua.NodeId(1011, idx), f"{idx}:Level", 50.0, double)
        await level.add_property(
            ua.NodeId(10110, idx),
            ua.QualifiedName("EURange", 0),
            ua.Range(Low=0.0, High=200.0),
            ua.VariantType.ExtensionObject,
            ua.NodeId(ua.ObjectIds.Range),
        )
        for nid, name, value, vtype in [
            (2001, "Enabled", False, ua.VariantType.Boolean),
            (2002, "Setpoint", 0, ua.VariantType.Int32),
        ]:
            var = await line.add_variable(ua.NodeId(nid, idx), f"{idx}:{name}", value, vtype)
            await var.set_writable()
        await server.start()
        self.server = server

    def start(self) -> UaServer:
        self.call(self._start())
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop())
            self.server = None

    def set(self, node_id: str, value: Any, vtype: Any = None) -> None:
        node = self.server.get_node(node_id)
        self.call(node.write_value(value, vtype or ua.VariantType.Double))

    def get(self, node_id: str) -> Any:
        return self.call(self.server.get_node(node_id).read_value())

    def close(self) -> None:
        self.stop()

        async def cancel_rest() -> None:  # the server's session loops, so none is left pending
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self.loop.is_running():
            self.call(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def make_cert(directory: Path, name: str, uri: str) -> tuple[Path, Path]:
    """A self-signed certificate and key (PEM) with the application URI OPC UA wants."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, True, True, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("pki")
    return {
        "server": make_cert(directory, "server", "urn:freeopcua:python:server"),
        "client": make_cert(directory, "client", "urn:flowengine:client"),
    }


@pytest.fixture(scope="module")
def server(certs: dict[str, tuple[Path, Path]]) -> Iterator[UaServer]:
    srv = UaServer(free_port(), certs["server"]).start()
    yield srv
    srv.close()


def test_seed_usage_example_runs_as_written(server: UaServer) -> None:
    from flowengine.connectors import OPCUAConnector

    opcua_config = {
        "server_url": server.url,
        "nodes": ["ns=2;i=1001", "ns=2;i=1002"],
        "username": "operator",
        "password": "s3cret",
    }
    opcua = OPCUAConnector(opcua_config)
    data = None
    if opcua.connect():
        data = opcua.read_data()  # Returns pandas DataFrame
        opcua.disconnect()
    assert isinstance(data, pd.DataFrame)
    assert data["value"].tolist() == [1200.0, 20.0]
    assert data["node_id"].tolist() == ["ns=2;i=1001", "ns=2;i=1002"]
    assert (data["quality"] == "good").all()


def test_seed_connection_failure_message(caplog: pytest.LogCaptureFixture) -> None:
    from flowengine.connectors import OPCUAConnector

    opcua = OPCUAConnector(
        {"server_url": f"opc.tcp://127.0.0.1:{free_port()}", "nodes": ["ns=2;i=1001"]}
    )
    assert opcua.connect() is False
    assert "Failed to connect to OPC UA server" in caplog.text
    opcua.disconnect()


def test_polling_flow_values_timestamps_and_status(server: UaServer) -> None:
    nodes = {
        "src": {
            "type": "opcua_in",
            "server_url": server.url,
            "nodes": {
                "ns=2;i=1001": "furnace_temp",
                "ns=2;i=1003": "flow_rate",
                "ns=2;s=Line3.Speed": "speed",
                "ns=2;i=1009": "broken",
            },
            "sampling_interval": 0.1,
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    result = run_flow(nodes, duration=1.0)
    frame = result.frame("cap")
    batches = result.batches("cap")
    assert len(batches) >= 5 and all(len(b) == 4 for b in batches)
    assert len(frame) == 4 * len(batches) == result.stats("src")["rows_out"]
    first = frame.iloc[:4].set_index("sensor")
    assert first.loc["furnace_temp", "value"] == 1200.0
    assert first.loc["speed", "value"] == 7.5
    assert first.loc["flow_rate", "timestamp"] == pd.Timestamp(SOURCE_TIME)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    broken = first.loc["broken"]
    assert broken["quality"] == "bad"
    assert broken["status_code"] == ua.StatusCodes.BadSensorFailure
    assert (first.drop("broken")["quality"] == "good").all()
    assert first.loc["speed", "node_id"] == "ns=2;s=Line3.Speed"


def test_browse_path_nodes(server: UaServer) -> None:
    nodes = {
        "src": {
            "type": "opcua_in",
            "server_url": server.url,
            "nodes": ["Objects/2:Line3/2:Pressure", "Line3/Temperature"],
            "sampling_interval": 0.1,
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    frame = run_flow(nodes, duration=0.3).frame("cap")
    assert frame.iloc[:2]["node_id"].tolist() == ["ns=2;i=1002", "ns=2;i=1001"]
    assert frame.iloc[:2]["sensor"].tolist() == ["2:Pressure", "Temperature"]
    assert frame.iloc[:2]["value"].tolist() == [20.0, 1200.0]


def _values(runtime: Runtime, sensor: str = "temp") -> list[float]:
    frames = [b.frame for b in runtime.node("cap").batches]  # type: ignore[attr-defined]
    if not frames:
        return []
    frame = pd.concat(frames)
    return frame.loc[frame["sensor"] == sensor, "value"].tolist()


def test_subscription_flow_and_deadband(server: UaServer) -> None:
    nodes = {
        "src": {
            "type": "opcua_in",
            "server_url": server.url,
            "mode": "subscription",
            "nodes": {"ns=2;i=1002": "temp"},
            "sampling_interval": 0.05,
            "batch_interval": 0.1,
            "deadband": {"type": "absolute", "value": 1.0},
            "queue_size": 10,
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }

    async def main() -> None:
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: _values(runtime) == [20.0], task)
        await asyncio.to_thread(server.set, "ns=2;i=1002", 20.5)  # inside the deadband
        await asyncio.to_thread(server.set, "ns=2;i=1002", 25.0)
        await until(lambda: _values(runtime)[-1:] == [25.0], task)
        runtime.stop()
        await task
        assert _values(runtime) == [20.0, 25.0]
        frame = pd.concat(b.frame for b in runtime.node("cap").batches)  # type: ignore[attr-defined]
        assert (frame["quality"] == "good").all() and str(frame["timestamp"].dt.tz) == "UTC"

    try:
        asyncio.run(main())
    finally:
        server.set("ns=2;i=1002", 20.0)


def test_secured_sign_and_encrypt_with_user(
    server: UaServer, certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = certs["client"]
    for mode in ("SignAndEncrypt", "Sign"):
        nodes = {
            "src": {
                "type": "opcua_in",
                "server_url": server.url,
                "nodes": ["ns=2;i=1001"],
                "username": "operator",
                "password": "s3cret",
                "security": {
                    "policy": "Basic256Sha256",
                    "mode": mode,
                    "certificate": str(cert),
                    "private_key": str(key),
                },
                "sampling_interval": 0.1,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        }
        result = run_flow(nodes, duration=0.5)
        assert result.frame("cap")["value"].iloc[0] == 1200.0, mode
    bad = {**nodes["src"], "password": "wrong"}
    result = run_flow({"src": bad, "cap": {"type": "capture"}}, duration=1.0)
    assert result.stats("src")["state"] in ("retrying", "stopped")
    assert result.stats("src")["retries"] >= 1 and not result.batches("cap")


def test_sink_writes_setpoints_with_type_coercion(server: UaServer) -> None:
    rows = [
        {"sensor": "ns=2;i=2002", "value": 41.6},
        {"sensor": "enabled", "value": "true"},
    ]
    nodes = {
        "src": {"type": "inject", "rows": rows, "wires": ["out"]},
        "out": {
            "type": "opcua_out",
            "server_url": server.url,
            "nodes": {"ns=2;i=2001": "enabled"},
        },
    }
    result = run_flow(nodes)
    assert result.stats("out")["errors"] == 0
    assert server.get("ns=2;i=2002") == 42
    assert server.get("ns=2;i=2001") is True


def test_missing_library_is_a_validation_message() -> None:
    class Needy(Source):
        requires: ClassVar[tuple[tuple[str, str], ...]] = (("no_such_module_xyz", "opcua"),)

    assert missing_requirements(Needy) == [
        "OPC UA library not available. Install 'flowengine[opcua]' "
        '(pip install "flowengine[opcua]")'
    ]
    checked = check_text(
        {"src": {"type": "needy", "wires": ["cap"]}, "cap": {"type": "capture"}},
        types={"needy": Needy},
    )
    assert not checked.ok
    assert any("OPC UA library not available" in str(p) for p in checked.problems)
    from flowengine.nodes.opcua.source import OpcuaIn

    assert missing_requirements(OpcuaIn) == []


def test_restart_reconnects_and_resubscribes() -> None:
    port = free_port()
    first = UaServer(port).start()
    nodes = {
        "version": 1,
        "settings": {"retry": {"initial": 0.2, "max": 0.5}},
        "nodes": {
            "src": {
                "type": "opcua_in",
                "server_url": first.url,
                "mode": "subscription",
                "nodes": {"ns=2;i=1001": "temp"},
                "sampling_interval": 0.05,
                "batch_interval": 0.1,
                "timeout": 1.0,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        },
    }
    second: UaServer | None = None

    async def main() -> None:
        nonlocal second
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: _values(runtime) == [1200.0], task)
        await asyncio.to_thread(first.close)
        await until(lambda: runtime.stats["src"].state == "retrying", task)
        second = await asyncio.to_thread(lambda: UaServer(port).start())
        await until(lambda: runtime.stats["src"].state == "ok", task)
        await until(lambda: len(_values(runtime)) >= 2, task)  # the initial value again
        await asyncio.to_thread(second.set, "ns=2;i=1001", 1234.5)
        await until(lambda: _values(runtime)[-1:] == [1234.5], task)
        runtime.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        first.close()
        if second is not None:
            second.close()


def test_subscription_items_created_in_batches(server: UaServer) -> None:
    nodes = {
        "src": {
            "type": "opcua_in",
            "server_url": server.url,
            "mode": "subscription",
            "nodes": ["ns=2;i=1001", "ns=2;i=1002", "ns=2;i=1003", "ns=2;s=Line3.Speed"],
            "subscribe_batch": 3,
            "sampling_interval": 0.05,
            "batch_interval": 0.1,
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    frame = run_flow(nodes, duration=1.0).frame("cap")
    assert sorted(frame["node_id"]) == sorted(nodes["src"]["nodes"])
    assert frame.set_index("node_id").loc["ns=2;i=1003", "timestamp"] == pd.Timestamp(SOURCE_TIME)


def test_subscription_buffer_is_bounded_and_drops_are_counted(
    server: UaServer, caplog: pytest.LogCaptureFixture
) -> None:
    total = 120
    nodes = {
        "src": {
            "type": "opcua_in",
            "server_url": server.url,
            "mode": "subscription",
            "nodes": {"ns=2;i=1010": "burst"},
            "sampling_interval": 0.01,
            "item_queue_size": 1000,  # the server keeps every write; the loss is ours to count
            "batch_interval": 0.02,
            "max_buffer": 5,
            "wires": ["cap"],
        },
        "cap": {"type": "capture", "delay": 0.25, "queue_size": 1},  # a slow downstream
    }

    async def burst() -> None:
        node = server.server.get_node("ns=2;i=1010")
        for i in range(1, total + 1):
            await node.write_value(float(i), ua.VariantType.Double)
            await asyncio.sleep(0.015)  # slower than sampling, so the server keeps each write

    async def main() -> None:
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: _values(runtime, "burst")[:1] == [0.0], task)
        src = runtime.node("src")
        client = src.client  # type: ignore[attr-defined]
        arrived = 0
        accept = client.accept

        def observe(readings: list[Any]) -> None:  # only counts what the subscription delivered
            nonlocal arrived
            arrived += len(readings)
            accept(readings)

        client.accept = observe
        writer = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(burst(), server.loop))
        deepest = 0

        def sample() -> bool:
            nonlocal deepest
            deepest = max(deepest, len(src.client.buffer))  # type: ignore[attr-defined]
            return writer.done() and _values(runtime, "burst")[-1:] == [float(total)]

        await until(sample, task)
        await writer
        runtime.stop()
        await task
        received = _values(runtime, "burst")
        dropped = runtime.stats["src"].counters.get("dropped", 0)
        assert deepest <= 5
        assert dropped > 0
        # every value delivered was either emitted downstream or counted as dropped
        assert len(received) - 1 + dropped == arrived
        assert total // 2 <= arrived <= total  # the server may merge writes under load
        assert dropped == client.dropped
        assert received == sorted(received)  # the oldest are dropped, order is kept

    try:
        asyncio.run(main())
    finally:
        server.set("ns=2;i=1010", 0.0)
    warnings = [r for r in caplog.records if "subscription buffer full" in r.getMessage()]
    assert warnings and "node 'src'" in warnings[0].getMessage()
    assert len(warnings) == 1  # rate-limited: one per 10 s


def _server_filters(server: UaServer) -> list[Any]:
    async def collect() -> list[Any]:
        subs = server.server.iserver.subscription_service.subscriptions.values()
        return [m.filter for s in subs for m in s.monitored_item_srv._monitored_items.values()]

    return server.call(collect())


def test_percent_deadband_is_sent_with_eurange(server: UaServer) -> None:
    nodes = {
        "src": {
            "type": "opcua_in",
            "server_url": server.url,
            "mode": "subscription",
            "nodes": {"ns=2;i=1011": "level"},
            "sampling_interval": 0.05,
            "batch_interval": 0.05,
            "deadband": {"type": "percent", "value": 2.5},
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }

    async def main() -> None:
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: _values(runtime, "level") == [50.0], task)
        # what the server decoded from our CreateMonitoredItems request
        filters = await asyncio.to_thread(_server_filters, server)
        runtime.stop()
        await task
        assert len(filters) == 1
        (flt,) = filters
        assert type(flt).__name__ == "DataChangeFilter"  # decoded from the wire
        assert flt.DeadbandType == ua.DeadbandType.Percent
        assert flt.DeadbandValue == 2.5
        assert flt.Trigger == ua.DataChangeTrigger.StatusValue

    asyncio.run(main())

    # without an EURange the client refuses with a clear message instead of subscribing
    no_range = {**nodes["src"], "nodes": {"ns=2;i=1002": "pressure"}}
    result = run_flow({"src": no_range, "cap": {"type": "capture"}}, duration=0.5)
    stats = result.stats("src")
    assert stats["retries"] >= 1 and not result.batches("cap")
    assert "EURange" in str(stats["last_error"]) and "ns=2;i=1002" in str(stats["last_error"])
