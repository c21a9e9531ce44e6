"""OPC UA out: write setpoints from rows, coerced to each node's data type."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from flowengine.extras import require
from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.opcua.client import OpcuaClient
from flowengine.nodes.opcua.config import OpcuaConnection
from flowengine.nodes.opcua.items import resolve
from flowengine.nodes.opcua.parse import coerce
from flowengine.types import Batch


class OpcuaOutConfig(NodeConfig, OpcuaConnection):
    """Connection keys as for `opcua_in`; `nodes` lists the writable nodes (or their names)."""

    nodes: list[str] | dict[str, str] = option(
        default_factory=list,
        description="Optional node ids or `node_id: name` mapping; rows may name a node by it.",
    )
    node_column: str = option("sensor", description="Column with the node id, path or name.")
    value_column: str = option("value", description="Column with the value to write.")


class OpcuaOut(Sink[OpcuaOutConfig]):
    """Writes each row's value to the node its node column names (one Write per batch).

    Each node's VariantType is read once, and values are coerced to it: 3.7 to an Int32 node
    writes 4, "true" to a Boolean node writes True. A failed write raises to the error port.
    With several `server_url`s a batch goes to the first server that answers: a lost
    connection fails over before the write, and the primary takes over again once it is back.
    """

    icon = "precision_manufacturing"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("asyncua", "opcua"),)
    client: OpcuaClient | None = None
    writer: OpcuaWriter | None = None
    _shown = 0

    async def start(self) -> None:
        self.client = OpcuaClient(self.config, logger=self.ctx.log, count=self.ctx.count)
        await self.client.connect()
        self.writer = OpcuaWriter(self.client)

    async def write(self, batch: Batch) -> None:
        assert self.writer is not None  # the runtime calls start first
        frame, cfg = batch.frame, self.config
        for column in (cfg.node_column, cfg.value_column):
            if column not in frame:
                raise KeyError(f"no column '{column}' in the batch")
        await self._serve()
        pairs = zip(frame[cfg.node_column].astype(str), frame[cfg.value_column], strict=True)
        await self.writer.write(pairs)
        self.ctx.count("writes", len(frame))

    async def _serve(self) -> None:
        """With several servers: connect again when the connection is lost (the runtime
        restarts no sink), to the first that answers, or move back to the primary when it
        is due; the status names the server that serves."""
        assert self.client is not None and self.writer is not None
        client, endpoints = self.client, self.client.endpoints
        if not endpoints.several:
            return
        if client.gone:
            await client.connect()
        else:
            await client.failback()
        if self._shown != endpoints.connects:
            self._shown = endpoints.connects
            self.writer.types.clear()
            self.ctx.status(f"connected to {endpoints.label()}")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


class OpcuaWriter:
    """Writes values to nodes, reading each node's VariantType once (per server)."""

    def __init__(self, client: OpcuaClient) -> None:
        self.client = client
        self.types: dict[str, Any] = {}

    async def write(self, targets: Iterable[tuple[str, Any]]) -> None:
        """Write ``(node, value)`` pairs (node ids, browse paths or configured names)."""
        ua = require("asyncua", "opcua").ua
        by_name = {v: k for k, v in self.client.names.items()}
        nodes, values = [], []
        for ref, value in targets:
            ref = by_name.get(ref, ref)
            node = await resolve(self.client.client, ref)
            key = node.nodeid.to_string()
            if key not in self.types:
                self.types[key] = await node.read_data_type_as_variant_type()
            vtype = self.types[key]
            nodes.append(node)
            values.append(ua.DataValue(ua.Variant(coerce(value, vtype), vtype)))
        if nodes:
            self.client.check()
            ids = [n.nodeid for n in nodes]
            results = await self.client.client.uaclient.write_attributes(
                ids, values, ua.AttributeIds.Value
            )
            for node, result in zip(nodes, results, strict=True):
                if not result.is_good():
                    raise ValueError(f"write to {node.nodeid.to_string()} failed: {result.name}")
