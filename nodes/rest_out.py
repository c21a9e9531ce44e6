"""REST sink: POST batches as JSON records to a webhook (protocol logic in connectors.rest)."""

from __future__ import annotations

from flowengine.connectors.rest import RestSettings, make_client, post_frame
from flowengine.node import NodeConfig, Sink, option
from flowengine.types import Batch


class RestOutConfig(NodeConfig):
    url: str = option(description="Webhook URL.", examples=["https://hooks.plant.local/line3"])
    headers: dict[str, str] = option({}, description="Extra request headers.")
    token: str | None = option(None, description="Bearer token.", secret=True)
    username: str | None = option(None, description="User for basic auth.")
    password: str | None = option(None, description="Password for basic auth.", secret=True)
    timeout: float = option(10.0, gt=0, description="Seconds per request.")
    max_rows: int = option(1000, ge=1, description="Rows per request; larger batches are split.")
    retries: int = option(3, ge=0, description="Retries per request on 5xx and timeouts.")
    backoff: float = option(0.5, ge=0, description="First retry delay (doubles).", advanced=True)


class RestOut(Sink):
    """POST each batch as a JSON array of records; a 4xx raises (the batch goes to `error`)."""

    Config = RestOutConfig
    config: RestOutConfig

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
