"""SQL source and sink on SQLite always, PostgreSQL and MariaDB when they listen on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
import sqlalchemy as sa

from flowengine.connectors import DatabaseConnector, LibraryMissing
from flowengine.node import Done, NodeConfig, Source, option
from flowengine.nodes.sql.client import SqlClient, driver_url
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from flowengine.types import Result
from tests.helpers.databases import postgres_missing, scratch_postgres
from tests.helpers.peers import free_port, port_open, until

PG = "postgresql://postgres@127.0.0.1:5432/test"
MY = "mysql://root@127.0.0.1:3306/test"
T0 = pd.Timestamp("2026-01-01T06:00:00.123456Z")


def _skip_reason(engine: str) -> str | None:
    if engine == "postgresql" and not port_open(5432):
        return "PostgreSQL not running on 127.0.0.1:5432: engine-specific SQL tested on SQLite only"
    if engine == "mysql" and not port_open(3306):
        return "MariaDB not running on 127.0.0.1:3306: engine-specific SQL tested on SQLite only"
    return None


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL per engine; the engine-specific ones skip with the reason when absent."""
    if reason := _skip_reason(request.param):
        pytest.skip(reason)
    return {"sqlite": f"sqlite:///{tmp_path / 'test.db'}", "postgresql": PG, "mysql": MY}[
        request.param
    ]


@pytest.fixture
def table(url: str) -> Iterator[str]:
    """A unique table name, dropped after the test."""
    name = f"fe_{uuid.uuid4().hex[:10]}"
    yield name
    engine = sa.create_engine(driver_url(url))
    with engine.begin() as conn:
        sa.Table(name, sa.MetaData()).drop(conn, checkfirst=True)
    engine.dispose()


def execute(url: str, sql: str, rows: list[dict[str, Any]] | None = None) -> list[Any]:
    """Run SQL directly (test setup and checks), values bound."""
    engine = sa.create_engine(driver_url(url))
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), rows) if rows else conn.execute(sa.text(sql))
            return list(result.fetchall()) if result.returns_rows else []
    finally:
        engine.dispose()


FRAMES: dict[str, list[pd.DataFrame]] = {}


class FramesConfig(NodeConfig):
    key: str = option(description="Key into FRAMES.")
    endless: bool = option(False, description="Keep emitting numbered rows after the frames.")


class Frames(Source):
    """Emits the frames registered under `key`, then (optionally) numbered rows forever."""

    Config = FramesConfig
    config: FramesConfig
    emitted: ClassVar[int] = 0

    async def start(self) -> None:
        self.i = getattr(self, "i", 0)

    async def read(self) -> Result:
        frames = FRAMES[self.config.key]
        if self.i < len(frames):
            self.i += 1
            return frames[self.i - 1]
        if not self.config.endless:
            raise Done
        await asyncio.sleep(0.01)
        n = Frames.emitted
        Frames.emitted += 10
        return pd.DataFrame({"seq": range(n, n + 10), "value": 0.5})


def sink_flow(url: str, table: str, frames: list[pd.DataFrame], **cfg: Any) -> dict[str, Any]:
    key = uuid.uuid4().hex
    FRAMES[key] = frames
    return {
        "src": {"type": "frames", "key": key, "wires": ["db"]},
        "db": {"type": "sql_out", "connection_string": url, "table": table, **cfg},
    }


def flow_run(flow: dict[str, Any], **kwargs: Any) -> Any:
    return run_flow(flow, types={"frames": Frames}, **kwargs)


def readings(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": [T0 + pd.Timedelta(i, "s") for i in range(start, start + n)],
            "sensor": [f"s{i % 3}" for i in range(start, start + n)],
            "value": [i * 1.5 for i in range(start, start + n)],
        }
    )


def test_plain_urls_map_to_psycopg3_and_pymysql():
    assert driver_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert driver_url("mariadb://u@h/db") == "mysql+pymysql://u@h/db"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(LibraryMissing, match=r"Install 'flowengine\[postgres\]'"):
        driver_url("postgresql://h/db")
    monkeypatch.setitem(sys.modules, "pymysql", None)
    with pytest.raises(LibraryMissing, match=r"Install 'flowengine\[mysql\]'"):
        driver_url("mysql://h/db")


def test_bad_table_name_fails_validation(tmp_path: Path):
    checked = check_text(
        sink_flow(f"sqlite:///{tmp_path}/x.db", "x; DROP TABLE y", []), types={"frames": Frames}
    )
    assert not checked.ok
    assert "not a valid table or column name" in str(checked.problems)


def test_sink_creates_appends_and_upserts(url: str, table: str):
    flow_run(sink_flow(url, table, [readings(0, 3), readings(3, 2)]))
    assert execute(url, f"SELECT COUNT(*) FROM {table}")[0][0] == 5
    flow_run(sink_flow(url, table, [readings(5, 1)]))
    assert execute(url, f"SELECT COUNT(*) FROM {table}")[0][0] == 6


def test_sink_upsert_on_key(url: str, table: str):
    first = readings(0, 4)
    changed = readings(2, 4).assign(value=-1.0)  # keys 2, 3 exist; 4, 5 are new
    result = flow_run(sink_flow(url, table, [first, changed], upsert_keys=["timestamp", "sensor"]))
    assert result.stats("db")["errors"] == 0
    rows = execute(url, f"SELECT value FROM {table} ORDER BY timestamp")
    assert [r[0] for r in rows] == [0.0, 1.5, -1.0, -1.0, -1.0, -1.0]


def test_dtypes_and_timestamps_round_trip(url: str, table: str, tmp_path: Path):
    frame = pd.DataFrame(
        {
            "timestamp": [T0, T0 + pd.Timedelta(1, "ms")],
            "line": ["line3", 'it\'s "quoted"'],
            "count": [1, 2**40],
            "value": [1.25, float("nan")],
            "ok": [True, False],
        }
    )
    flow_run(sink_flow(url, table, [frame]))
    back = flow_run(
        {
            "src": {
                "type": "sql_in",
                "connection_string": url,
                "query": f"SELECT * FROM {table} ORDER BY timestamp",
                "polls": 1,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        },
        path=tmp_path / "flow.yaml",
    ).frame("cap")
    assert back["timestamp"].tolist() == frame["timestamp"].tolist()
    assert str(back["timestamp"].dt.tz) == "UTC"
    assert back["line"].tolist() == frame["line"].tolist()
    assert back["count"].tolist() == [1, 2**40]
    assert back["value"].iloc[0] == 1.25 and pd.isna(back["value"].iloc[1])
    assert [bool(v) for v in back["ok"]] == [True, False]


def test_bound_params_keep_an_injection_attempt_as_data(url: str, table: str, tmp_path: Path):
    evil = f"x'; DROP TABLE {table}; --"
    flow_run(sink_flow(url, table, [pd.DataFrame({"name": [evil, "plain"], "value": [1.0, 2.0]})]))
    result = flow_run(
        {
            "src": {
                "type": "sql_in",
                "connection_string": url,
                "query": f"SELECT name, value FROM {table} WHERE name = :name",
                "params": {"name": evil},
                "polls": 1,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        },
        path=tmp_path / "flow.yaml",
    )
    assert result.frame("cap")["name"].tolist() == [evil]
    assert execute(url, f"SELECT COUNT(*) FROM {table}")[0][0] == 2


def watermark_flow(url: str, table: str, node: str = "src") -> dict[str, Any]:
    return {
        node: {
            "type": "sql_in",
            "connection_string": url,
            "query": f"SELECT * FROM {table} WHERE timestamp > :last_timestamp ORDER BY timestamp",
            "watermark_column": "timestamp",
            "initial": "2000-01-01T00:00:00Z",
            "polls": 2,
            "poll_interval": 0.01,
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }


def test_watermark_across_restarts_neither_repeats_nor_skips(url: str, table: str, tmp_path):
    flow_run(sink_flow(url, table, [readings(0, 5)]))
    flow_path = tmp_path / "flow.yaml"
    first = flow_run(watermark_flow(url, table), path=flow_path).frame("cap")
    state = json.loads((tmp_path / ".flowengine-state" / "src.json").read_text())
    assert pd.Timestamp(state["value"]) == T0 + pd.Timedelta(4, "s")
    flow_run(sink_flow(url, table, [readings(5, 3)]))  # new rows while the flow is down
    second = flow_run(watermark_flow(url, table), path=flow_path).frame("cap")
    third = flow_run(watermark_flow(url, table), path=flow_path)
    seen = pd.concat([first, second])["value"].tolist()
    assert seen == [i * 1.5 for i in range(8)]  # all rows, each once, in order
    assert len(second) == 3
    assert third.stats("cap")["rows_in"] == 0


def test_row_counts_end_to_end_table_to_table(url: str, table: str, tmp_path: Path):
    flow_run(sink_flow(url, table, [readings(i * 1000, 1000) for i in range(5)]))
    copy = f"{table}_c"
    try:
        result = flow_run(
            {
                "src": {
                    "type": "sql_in",
                    "connection_string": url,
                    "query": f"SELECT * FROM {table}",
                    "polls": 1,
                    "wires": ["db"],
                },
                "db": {"type": "sql_out", "connection_string": url, "table": copy},
            },
            path=tmp_path / "flow.yaml",
        )
        assert result.stats("db")["rows_in"] == 5000
        assert execute(url, f"SELECT COUNT(*), SUM(value) FROM {copy}")[0] == (
            5000,
            pytest.approx(sum(i * 1.5 for i in range(5000))),
        )
    finally:
        execute(url, f"DROP TABLE IF EXISTS {copy}")


def test_database_connector_with_params_on_sqlite(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    execute(url, "CREATE TABLE sensors (timestamp TEXT, sensor_id TEXT, value REAL)")
    execute(url, "INSERT INTO sensors VALUES (:t, :s, :v)", [{"t": "x", "s": "a", "v": 1.0}])
    db = DatabaseConnector(
        {
            "connection_string": url,
            "query": "SELECT * FROM sensors WHERE sensor_id = :s",
            "params": {"s": "a"},
        }
    )
    assert db.connect()
    frame = db.read_data()
    assert db.disconnect()
    assert frame is not None and frame["value"].tolist() == [1.0]
    assert not DatabaseConnector(
        {"connection_string": "sqlite:///" + str(tmp_path / "no/x.db"), "query": "SELECT 1"}
    ).connect()


# ---- PostgreSQL: a scratch database, the seed example, and an outage of the connection path --------
@pytest.fixture(scope="module")
def scratch_pg() -> Iterator[str]:
    """A scratch database on the shared PostgreSQL server (the server itself is never touched)."""
    if reason := postgres_missing():
        pytest.skip(reason)
    with scratch_postgres() as url:
        yield url


def test_seed_database_example_as_written(scratch_pg: str):
    execute(scratch_pg, "CREATE TABLE sensors (timestamp timestamptz, sensor_id text, value float)")
    execute(
        scratch_pg,
        "INSERT INTO sensors VALUES (NOW() - INTERVAL '5 minutes', 'furnace', 1250.0),"
        " (NOW() - INTERVAL '2 hours', 'furnace', 1100.0)",
    )
    db_config = {
        "connection_string": scratch_pg,  # 'postgresql://user:pass@host:5432/db' in the seed
        "query": "SELECT * FROM sensors WHERE timestamp > NOW() - INTERVAL '1 hour'",
    }

    db = DatabaseConnector(db_config)
    if db.connect():
        data = db.read_data()  # Execute query
        db.disconnect()
    assert data is not None and data["value"].tolist() == [1250.0]
    assert str(data["timestamp"].dt.tz) == "UTC"
    assert data["source"].tolist() == ["DatabaseConnector"]


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port; ``stop`` cuts every connection (an outage)."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def proxy(scratch_pg: str) -> Iterator[tuple[TcpProxy, str]]:
    port = free_port()
    proxy = TcpProxy(port, 5432)
    proxy.start()
    yield proxy, scratch_pg.replace(":5432/", f":{port}/")
    proxy.stop()


def run_with_outage(flow: dict[str, Any], proxy: TcpProxy, watch: str, during: Any, done: Any):
    """Run ``flow``; cut the proxy once data flows, wait for `retrying`, restore, wait ``done``."""
    runtime = Runtime(check_text(flow, types={"frames": Frames}))

    async def main() -> None:
        task = asyncio.create_task(runtime.run())

        await until(
            lambda: runtime.stats[watch].rows_in + runtime.stats[watch].rows_out > 0,
            task,
            what="data",
        )
        proxy.stop()
        await until(lambda: runtime.stats[watch].state == "retrying", task, what="retrying")
        await asyncio.to_thread(during)
        proxy.start()
        await until(
            lambda: runtime.stats[watch].state == "ok" and done(runtime), task, what="recovery"
        )
        runtime.stop()
        await task

    asyncio.run(main())
    return runtime


def test_sink_outage_queues_and_loses_nothing(proxy: tuple[TcpProxy, str]):
    tcp, url = proxy
    table = f"fe_{uuid.uuid4().hex[:10]}"
    flow = {
        "settings": {"retry": {"initial": 0.1, "max": 0.5}, "queue_size": 4},
        "nodes": sink_flow(url, table, [], retry_max=0.3),
    }
    flow["nodes"]["src"]["endless"] = True
    before = Frames.emitted
    runtime = run_with_outage(flow, tcp, "db", lambda: time.sleep(0.5), lambda rt: True)
    src = runtime.stats["src"]
    assert runtime.stats["db"].rows_in == src.rows_out
    count, low, high = execute(
        url.replace(f":{tcp.port}/", ":5432/"), f"SELECT COUNT(*), MIN(seq), MAX(seq) FROM {table}"
    )[0]
    assert count == src.rows_out == high - low + 1  # every emitted row, once
    assert low == before
    assert runtime.stats["db"].counters["write_retries"] >= 1  # the outage was real


def test_source_outage_reads_rows_inserted_meanwhile(proxy: tuple[TcpProxy, str], tmp_path: Path):
    tcp, url = proxy
    direct = url.replace(f":{tcp.port}/", ":5432/")
    table = f"fe_{uuid.uuid4().hex[:10]}"
    execute(direct, f"CREATE TABLE {table} (id bigint primary key, value float)")
    execute(direct, f"INSERT INTO {table} VALUES (1, 1.0), (2, 2.0)")
    flow = {
        "settings": {"retry": {"initial": 0.1, "max": 0.5}},
        "nodes": {
            "src": {
                "type": "sql_in",
                "connection_string": url,
                "query": f"SELECT * FROM {table} WHERE id > :last_id ORDER BY id",
                "watermark_column": "id",
                "initial": 0,
                "poll_interval": 0.1,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        },
    }

    def insert_during_outage() -> None:
        execute(direct, f"INSERT INTO {table} VALUES (3, 3.0), (4, 4.0)")

    runtime = Runtime(check_text(flow, types={"frames": Frames}, path=tmp_path / "flow.yaml"))
    cap = runtime.node("cap")
    ids = lambda: [i for b in cap.batches for i in b.frame["id"]]  # noqa: E731

    async def main() -> None:
        task = asyncio.create_task(runtime.run())

        await until(lambda: ids() == [1, 2], task, what="first rows")
        tcp.stop()
        await until(lambda: runtime.stats["src"].state == "retrying", task, what="retrying")
        await asyncio.to_thread(insert_during_outage)
        tcp.start()
        await until(lambda: len(ids()) >= 4, task, what="rows after recovery")
        runtime.stop()
        await task

    asyncio.run(main())
    assert ids() == [1, 2, 3, 4]


def test_commit_outcome_is_checked_by_transaction_id(scratch_pg: str):
    """After a connection dies during COMMIT the sink asks PostgreSQL whether it committed."""
    engine = sa.create_engine(driver_url(scratch_pg))
    with engine.connect() as conn:
        conn.begin()
        done = conn.exec_driver_sql("SELECT txid_current()").scalar()
        conn.commit()
        conn.begin()
        undone = conn.exec_driver_sql("SELECT txid_current()").scalar()
        conn.rollback()
    engine.dispose()

    async def check() -> tuple[bool, bool]:
        client = SqlClient(scratch_pg)
        try:
            return await client.committed(done), await client.committed(undone)
        finally:
            await client.close()

    assert asyncio.run(check()) == (True, False)
