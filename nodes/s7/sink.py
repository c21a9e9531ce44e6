"""S7 out: write values from long-format rows to the PLC tags marked writable."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pandas as pd

from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.s7.address import encode
from flowengine.nodes.s7.client import S7Client
from flowengine.nodes.s7.config import S7Connection, S7Tag
from flowengine.types import Batch


class S7OutConfig(NodeConfig, S7Connection):
    """Connection keys as for `s7_in`; `tags` with `writable: true` may be written."""

    sensor_column: str = option("sensor", description="Column naming the tag (sensor or address).")
    value_column: str = option("value", description="Column with the value to write.")
    bit_writes: Literal["native", "read_modify_write"] = option(
        "native",
        advanced=True,
        description="BOOL writes: `native` sends one S7 BIT write, which the CPU applies to "
        "that bit alone; `read_modify_write` reads the byte, sets the bit and writes the byte "
        "(for servers that mishandle BIT writes; a bit the PLC changes in between is lost).",
    )

    def writable(self) -> dict[str, S7Tag]:
        """Writable tags by sensor name and by address as written."""
        found: dict[str, S7Tag] = {}
        for tag in self.tags:
            if tag.writable:
                found[tag.address.strip()] = found[tag.name] = tag
        return found


class S7Out(Sink[S7OutConfig]):
    """Writes each row's value to the writable tag its sensor column names, in row order.

    Values are checked against the tag's type first: 40000 for an INT, "abc" for a REAL or
    a row naming no writable tag becomes an `error` row (with an `error` column) and the rest
    are written. A BOOL is written as its bit alone (see `bit_writes`). A lost connection
    sends the batch to `error`; the next batch connects again.
    """

    icon = "memory"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("snap7", "s7"),)
    client: S7Client | None = None
    targets: dict[str, S7Tag]

    async def start(self) -> None:
        self.targets = self.config.writable()
        self.client = S7Client(self.config)
        await self.client.connect()

    async def write(self, batch: Batch) -> None:
        cfg, frame = self.config, batch.frame
        for column in (cfg.sensor_column, cfg.value_column):
            if column not in frame:
                raise KeyError(f"no column '{column}' in the batch")
        if self.client is None or self.client.client is None:
            self.client = S7Client(cfg)
            await self.client.connect()  # lost earlier; a failure here fails this batch
        failed: list[str | None] = []
        for name, value in zip(frame[cfg.sensor_column], frame[cfg.value_column], strict=True):
            failed.append(await self._write_one(str(name), value))
        bad = [i for i, why in enumerate(failed) if why is not None]
        self.ctx.count("writes", len(failed) - len(bad))
        if bad:
            reasons = [str(failed[i]) for i in bad]
            errors = frame.iloc[bad].assign(error=reasons).reset_index(drop=True)
            self.ctx.error(reasons[-1], len(bad))
            await self.ctx.send({"error": Batch(errors, origin=self.ctx.node_id, error=reasons[0])})

    async def _write_one(self, name: str, value: Any) -> str | None:
        """Write one row; why it was not written (None when it was)."""
        from snap7.error import S7ProtocolError

        assert self.client is not None
        tag = self.targets.get(name)
        if tag is None:
            return f"no writable tag '{name}'"
        try:
            if pd.api.types.is_scalar(value) and pd.isna(value):
                raise ValueError(f"{value!r} is missing")
            raw = value if tag.parsed.type in ("BOOL", "CHAR", "STRING") else tag.unscaled(value)
            data = encode(tag.parsed, raw)
        except (TypeError, ValueError) as exc:
            return f"{tag.name} ({tag.parsed.type_name}): {exc}"
        try:
            await self.client.write(tag.parsed, data, self.config.bit_writes)
        except S7ProtocolError as exc:
            return f"write to {tag.address} refused: {exc}"
        return None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
