"""OPC UA out: write setpoints from rows, coerced to each node's data type."""

from __future__ import annotations

from typing import ClassVar

from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.opcua.client import OpcuaClient, OpcuaWriter
from flowengine.nodes.opcua.config import OpcuaConnection
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
    """

    requires: ClassVar[tuple[tuple[str, str], ...]] = (("asyncua", "opcua"),)
    client: OpcuaClient | None = None
    writer: OpcuaWriter | None = None

    async def start(self) -> None:
        self.client = OpcuaClient(self.config)
        await self.client.connect()
        self.writer = OpcuaWriter(self.client)

    async def write(self, batch: Batch) -> None:
        assert self.writer is not None  # the runtime calls start first
        frame, cfg = batch.frame, self.config
        for column in (cfg.node_column, cfg.value_column):
            if column not in frame:
                raise KeyError(f"no column '{column}' in the batch")
        pairs = zip(frame[cfg.node_column].astype(str), frame[cfg.value_column], strict=True)
        await self.writer.write(pairs)
        self.ctx.count("writes", len(frame))

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
