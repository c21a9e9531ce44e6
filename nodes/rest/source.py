"""REST source: poll JSON endpoints into the long format (protocol logic in client.py)."""

from __future__ import annotations

import asyncio
import logging

from flowengine.logs import RateLimiter
from flowengine.node import Done, NodeConfig, Source, option
from flowengine.nodes.rest.client import RestPoller, RestSettings
from flowengine.nodes.rest.config import HttpConfig
from flowengine.nodes.rest.parse import RecordMap, Shape, error_frame
from flowengine.nodes.rest.rows import TimeUnit
from flowengine.types import Batch, NonFinite, Result


class RestInConfig(NodeConfig, HttpConfig):
    base_url: str = option(description="Root URL of the API.", examples=["https://api.plant.local"])
    endpoints: list[str] = option(
        [""], description="Paths below base_url, one GET each per poll.", examples=[["temperature"]]
    )
    poll_interval: float = option(5.0, ge=0, description="Seconds between polls.")
    records_path: str = option(
        "", description="Dotted path to the records in the JSON.", examples=["data.readings"]
    )
    sensor_field: str = option("sensor", description="Field naming the sensor (else endpoint).")
    value_field: str = option("value", description="Field holding the value.")
    timestamp_field: str = option("timestamp", description="ISO 8601 or epoch-number field.")
    timestamp_unit: TimeUnit = option(
        "auto",
        description="Unit of epoch-number timestamps; `auto` picks it from the magnitude "
        "(seconds below 1e11, then ms, us, ns).",
    )
    shape: Shape = option(
        "auto",
        description="`wide`: every numeric field is a sensor (melted to rows); `auto` picks "
        "long when records have the value field.",
    )
    polls: int | None = option(None, ge=1, description="Polls before the source ends.")
    non_finite: NonFinite = option(
        "bad",
        description="NaN, +/-Infinity, null or overflowing values: `bad` keeps the reading with "
        "quality `bad`, `error` sends the record to the error port, `keep` marks it `good`. "
        "A null timestamp is the poll time with quality `bad`.",
    )
    max_response_bytes: int = option(
        10_485_760,
        ge=1,
        advanced=True,
        description="A larger response body is not read on: it goes to the error port (a preview).",
    )


class RestIn(Source[RestInConfig]):
    """Poll REST endpoints; unusable responses go to `error` with their HTTP status code."""

    icon = "http"
    io = True  # replaced by a feeder/capture in `flowengine test`
    poller: RestPoller | None = None
    #: Polls made so far; kept across restarts so `polls` counts them all.
    _done: int = 0
    limiter: RateLimiter

    async def start(self) -> None:
        cfg = self.config
        self.limiter = RateLimiter(5.0)
        settings = RestSettings(**cfg.model_dump(include=RestSettings.fields()))
        mapping = RecordMap(
            cfg.records_path,
            cfg.sensor_field,
            cfg.value_field,
            cfg.timestamp_field,
            cfg.shape,
            cfg.timestamp_unit,
            cfg.non_finite,
        )
        self.poller = RestPoller(
            cfg.base_url, cfg.endpoints, settings, mapping, cfg.max_response_bytes
        )
        await self.poller.open()

    async def read(self) -> Result:
        cfg = self.config
        if cfg.polls is not None and self._done >= cfg.polls:
            raise Done
        if self._done:
            await asyncio.sleep(cfg.poll_interval)
        assert self.poller is not None  # the runtime calls start first
        frame, errors = await self.poller.poll()
        self._done += 1
        self.ctx.count("polls")
        result: dict[str, object] = {}
        if frame is not None:
            result["out"] = frame.assign(source=self.ctx.node_id)
        if errors:  # each counts as an error (run summary, flowengine_node_errors_total)
            self.ctx.count("bad_responses", len(errors))
            self.ctx.stats.errors += len(errors)
            self.ctx.stats.last_error = f"RestError: {errors[-1]}"[:500]
            for error in errors:  # the limiter's "+N more" counts responses and records
                self.limiter.log(self.ctx.log, logging.WARNING, error.__str__)
            result["error"] = Batch(error_frame(errors), error=str(errors[0]))
        return result or None  # type: ignore[return-value]

    async def close(self) -> None:
        if self.poller is not None:
            await self.poller.close()
