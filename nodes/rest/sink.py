"""REST sink: POST batches as JSON records to a webhook (protocol logic in connectors.rest)."""

from __future__ import annotations

from flowengine.nodes.rest.client import HttpConfig, RestSettings, make_client, post_frame

from flowengine.node import Sink, option
from flowengine.types import Batch


class RestOutConfig(HttpConfig):
    url: str = option(description="Webhook URL.", examples=["https://hooks.plant.local/line3"])
    max_rows: int = option(1000, ge=1, description="Rows per request; larger batches are split.")


class RestOut(Sink[RestOutConfig]):
    """POST each batch as a JSON array of records; a 4xx raises (the batch goes to `error`)."""

    async def start(self) -> None:
        cfg = self.config
        self.settings = RestSettings(**cfg.model_dump(include=RestSettings.fields()))
        self.client = make_client(self.settings)

    async def write(self, batch: Batch) -> None:
        cfg = self.config
        sent = await post_frame(self.client, self.settings, cfg.url, batch.frame, cfg.max_rows)
        self.ctx.count("requests", sent)

    async def close(self) -> None:
        if hasattr(self, "client"):
            await self.client.aclose()
