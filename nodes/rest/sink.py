"""REST sink: POST batches as JSON records to a webhook (protocol logic in client.py)."""

from __future__ import annotations

import httpx
from pydantic import ValidationInfo, field_validator

from flowengine.compression import Codec, check_codec, check_level
from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.rest.client import RestSettings, make_client, post_frame
from flowengine.nodes.rest.config import HttpConfig
from flowengine.types import Batch


class RestOutConfig(NodeConfig, HttpConfig):
    url: str = option(description="Webhook URL.", examples=["https://hooks.plant.local/line3"])
    max_rows: int = option(1000, ge=1, description="Rows per request; larger batches are split.")
    compression: Codec = option(
        "none",
        description="Compress each request body and say so in `Content-Encoding` (zstd needs "
        "flowengine[zstd]). A server that does not accept it answers 415: the batch goes to "
        "the error port with a message naming the encoding.",
    )
    compression_level: int | None = option(
        None, ge=1, le=22, advanced=True, description="gzip 1-9 (default 6), zstd 1-22 (3)."
    )

    @field_validator("compression")
    @classmethod
    def _codec(cls, value: Codec) -> Codec:
        check_codec(value)
        return value

    @field_validator("compression_level")
    @classmethod
    def _level(cls, value: int | None, info: ValidationInfo) -> int | None:
        return check_level(value, info.data.get("compression", "none"))


class RestOut(Sink[RestOutConfig]):
    """POST each batch as a JSON array of records; a 4xx raises (the batch goes to `error`)."""

    icon = "http"
    io = True  # replaced by a feeder/capture in `flowengine test`
    client: httpx.AsyncClient | None = None
    settings: RestSettings

    async def start(self) -> None:
        cfg = self.config
        self.settings = RestSettings(**cfg.model_dump(include=RestSettings.fields()))
        self.client = make_client(self.settings)

    async def write(self, batch: Batch) -> None:
        cfg = self.config
        assert self.client is not None  # the runtime calls start first
        sent = await post_frame(
            self.client,
            self.settings,
            cfg.url,
            batch.frame,
            cfg.max_rows,
            cfg.compression,
            cfg.compression_level,
        )
        self.ctx.count("requests", sent)

    def is_transient(self, exc: Exception) -> bool:
        """Unreachable, timed out, a 5xx after retries, 408 or 429: the service, not the batch
        (a ``buffer``ed sink keeps the batch and tries again). Another 4xx is the batch's own."""
        if isinstance(exc, httpx.TransportError):
            return True
        status = getattr(exc, "status", None)
        if isinstance(status, int):
            return status >= 500 or status in (408, 429)
        return super().is_transient(exc)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
