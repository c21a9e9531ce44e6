"""Prometheus metrics and ``/healthz``, read from the runtime's status API.

A tiny asyncio HTTP server serves both, so the endpoint lives in the flow's own event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from flowengine.live import Watched
from flowengine.status import NodeStats

log = logging.getLogger("flowengine.metrics")
STATES = ("starting", "ok", "retrying", "error", "stopped")
#: A node counter that holds a partition's consumer lag (``nats_in``: ``lag_p3``).
LAG = re.compile(r"lag_p(\d+)")
LABELS = ["node", "type"]
COUNTERS = {
    "batches_in": "Batches received",
    "batches_out": "Batches sent",
    "rows_in": "Rows received",
    "rows_out": "Rows sent",
    "errors": "Errors raised by the node",
    "retries": "Reconnect attempts",
}


def _disk_gauges() -> dict[str, GaugeMetricFamily]:
    """What buffers and journals hold, by node and kind (buffer, journal)."""
    docs = {
        "buffered_rows": "Rows held on disk (a sink's buffer, a source's journal)",
        "buffered_bytes": "Bytes held on disk (a sink's buffer, a source's journal)",
        "buffer_oldest_seconds": "Age of the oldest batch held in a sink's buffer",
    }
    return {
        name: GaugeMetricFamily(f"flowengine_node_{name}", doc, labels=["node", "kind"])
        for name, doc in docs.items()
    }


def _add_disk(
    gauges: dict[str, GaugeMetricFamily], warning: GaugeMetricFamily, stats: NodeStats, node: str
) -> None:
    key = [node, stats.type]
    warning.add_metric(key, 0.0 if stats.warning is None else 1.0)
    if (disk := stats.on_disk()) is None:
        return
    dkey = [node, disk.kind]
    gauges["buffered_rows"].add_metric(dkey, disk.rows)
    gauges["buffered_bytes"].add_metric(dkey, disk.bytes)
    if disk.age_s is not None:
        gauges["buffer_oldest_seconds"].add_metric(dkey, disk.age_s)


class RuntimeCollector(Collector):
    """Turns node stats into metric families at scrape time (no bookkeeping in the hot path).
    The ``node`` label is the key in the runtime's stats: the node id, or ``<node>@p<p>`` for
    the partitions of a ``--worker``."""

    def __init__(self, runtime: Watched) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        families = {
            name: CounterMetricFamily(f"flowengine_node_{name}", doc, labels=LABELS)
            for name, doc in COUNTERS.items()
        }
        state = GaugeMetricFamily(
            "flowengine_node_state", "1 for the node's current state", labels=[*LABELS, "state"]
        )
        age = GaugeMetricFamily(
            "flowengine_node_data_age_seconds", "Seconds since the last data", labels=LABELS
        )
        wire_labels = ["node", "from", "port"]
        depth = GaugeMetricFamily(
            "flowengine_queue_depth", "Batches waiting on an input wire", labels=wire_labels
        )
        capacity = GaugeMetricFamily(
            "flowengine_queue_capacity", "Capacity of an input wire", labels=wire_labels
        )
        custom = CounterMetricFamily(
            "flowengine_node_counter", "Counters set by node code", labels=[*LABELS, "name"]
        )
        warning = GaugeMetricFamily(
            "flowengine_node_warning",
            "1 while the node warns (a full buffer or journal, a sink down with a backlog)",
            labels=LABELS,
        )
        disk = _disk_gauges()
        lag = GaugeMetricFamily(
            "flowengine_partition_lag",
            "Messages waiting for a partition's consumer (nats_in: num_pending)",
            labels=["node", "partition"],
        )
        for node, stats in self.runtime.stats.items():
            key = [node, stats.type]
            for name, family in families.items():
                family.add_metric(key, getattr(stats, name))
            for s in STATES:
                state.add_metric([*key, s], 1.0 if stats.state == s else 0.0)
            if stats.data_age is not None:
                age.add_metric(key, stats.data_age)
            for wire in stats.wires:
                wkey = [node, wire.source, wire.port]
                depth.add_metric(wkey, len(wire.items))
                capacity.add_metric(wkey, wire.capacity)
            for name, value in stats.counters.items():
                custom.add_metric([*key, name], value)
                if match := LAG.fullmatch(name):
                    lag.add_metric([node, match.group(1)], value)
            _add_disk(disk, warning, stats, node)
        yield from families.values()
        yield from (state, age, depth, capacity, custom, warning, lag)
        yield from disk.values()


class MetricsServer:
    """Serves ``/metrics`` (Prometheus text format) and ``/healthz`` on 127.0.0.1 by default."""

    def __init__(self, runtime: Watched, port: int, host: str = "127.0.0.1") -> None:
        self.runtime = runtime
        self.host, self.port = host, port
        self.registry = CollectorRegistry()
        self.registry.register(RuntimeCollector(runtime))
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _health(self) -> tuple[int, bytes]:
        states = {node: s.state for node, s in self.runtime.stats.items()}
        status = "stopping" if self.runtime.stopping else "ok"
        code = 503 if self.runtime.stopping else 200
        return code, json.dumps({"status": status, "nodes": states}).encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) > 1 else "/"
            if path == "/metrics":
                code, body, ctype = 200, generate_latest(self.registry), "text/plain; version=0.0.4"
            elif path == "/healthz":
                code, body = self._health()
                ctype = "application/json"
            else:
                code, body, ctype = 404, b"not found\n", "text/plain"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
            head = f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
