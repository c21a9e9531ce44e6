"""SQL sink: append (or upsert) batches with executemany; the table is created when missing."""

from __future__ import annotations

import asyncio

from pydantic import field_validator

from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.sql.client import CommitUncertain, SqlClient, beside_flow, is_disconnect
from flowengine.nodes.sql.config import SqlUrl, connection_field, identifier
from flowengine.types import Batch


class SqlOutConfig(NodeConfig):
    connection_string: SqlUrl = connection_field("writer")
    table: str = option(description="Table to write (created from the batch's dtypes if missing).")
    upsert_keys: list[str] = option(
        [], description="Key columns: rows with the same key are updated, not duplicated."
    )
    retry_max: float = option(
        10.0, gt=0, description="Longest wait between retries while the database is unreachable."
    )

    @field_validator("table", "upsert_keys")
    @classmethod
    def _names(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            identifier(name)
        return value


class SqlOut(Sink[SqlOutConfig]):
    """Write each batch in one transaction; while the database is unreachable the write waits
    and retries (the queue fills, upstream slows), so an outage loses no rows."""

    icon = "storage"
    io = True  # replaced by a feeder/capture in `flowengine test`
    requires = (("sqlalchemy", "sql"),)
    client: SqlClient | None = None

    async def start(self) -> None:
        self.client = SqlClient(beside_flow(self.config.connection_string, self.ctx.flow_dir))
        await self.client.ping()

    async def write(self, batch: Batch) -> None:
        cfg = self.config
        assert self.client is not None  # the runtime calls start first
        delay, pending = 0.2, None
        reason: Exception
        while True:
            try:
                if pending is None or not await self.client.committed(pending):
                    await self.client.write(cfg.table, batch.frame, cfg.upsert_keys)
                break
            except CommitUncertain as exc:  # retried unless PostgreSQL says it committed
                pending, reason = exc.xid, exc
            except Exception as exc:
                if not is_disconnect(exc, self.client.dialect):
                    raise
                reason = exc
            self.ctx.count("write_retries")
            self.ctx.status(f"database unreachable, retry in {delay:.1f}s", "retrying")
            self.ctx.log.warning("write failed: %s; retrying in %.1fs", reason, delay)
            await asyncio.sleep(delay)
            delay = min(cfg.retry_max, delay * 2)
        if self.ctx.stats.state == "retrying":
            self.ctx.status("", "ok")
        self.ctx.count("rows_written", len(batch.frame))

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
