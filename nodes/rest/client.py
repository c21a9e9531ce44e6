"""REST over httpx: polling JSON endpoints into the long format, and POSTing batches as JSON.

One client serves the ``rest_in``/``rest_out`` nodes and the seed's :class:`RESTConnector`.
Retries inside one call are bounded and only for what a retry can fix (5xx, timeouts); a refused
connection raises at once so the runtime's backoff takes over and the node shows ``retrying``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.node import NodeConfig, option

log = logging.getLogger("flowengine.nodes.rest.client")

Shape = Literal["auto", "long", "wide"]
TimeUnit = Literal["auto", "s", "ms", "us", "ns"]
#: ``auto``: the largest magnitude of an epoch column picks its unit (seconds stay below 1e11
#: until the year 5138, so plain epoch seconds are never misread).
AUTO_UNITS = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))


class HttpConfig(NodeConfig):
    """Request settings shared by the REST source and sink."""

    headers: dict[str, str] = option({}, description="Extra request headers (use ${VAR} for keys).")
    token: str | None = option(None, description="Bearer token.", secret=True)
    username: str | None = option(None, description="User for basic auth.")
    password: str | None = option(None, description="Password for basic auth.", secret=True)
    timeout: float = option(10.0, gt=0, description="Seconds per request.")
    retries: int = option(3, ge=0, description="Retries per request on 5xx and timeouts.")
    backoff: float = option(0.5, ge=0, description="First retry delay (doubles).", advanced=True)


class RestError(Exception):
    """A response the client cannot use; ``status`` is the HTTP status code (0 if none)."""

    def __init__(self, message: str, status: int = 0, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(slots=True)
class RecordMap:
    """Where the long format's columns are found in each JSON record."""

    records_path: str = ""
    sensor_field: str = "sensor"
    value_field: str = "value"
    timestamp_field: str = "timestamp"
    shape: Shape = "auto"
    timestamp_unit: TimeUnit = "auto"


@dataclass(slots=True)
class RestSettings:
    """Connection settings shared by the source, the sink and the seed connector."""

    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    token: str | None = None
    username: str | None = None
    password: str | None = None
    retries: int = 3
    backoff: float = 0.5

    @classmethod
    def fields(cls) -> set[str]:
        """The names a node config shares with these settings."""
        return set(cls.__dataclass_fields__)


def make_client(settings: RestSettings, base_url: str = "") -> httpx.AsyncClient:
    """A pooled client with headers, bearer or basic auth, and the timeout applied."""
    headers = dict(settings.headers)
    if settings.token:
        headers["Authorization"] = f"Bearer {settings.token}"
    auth = None
    if settings.username is not None:
        auth = httpx.BasicAuth(settings.username, settings.password or "")
    return httpx.AsyncClient(
        base_url=base_url, headers=headers, auth=auth, timeout=settings.timeout
    )


async def request(
    client: httpx.AsyncClient, settings: RestSettings, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Send with bounded retries and exponential backoff on 5xx and timeouts.

    A refused connection raises ``httpx.ConnectError`` at once; the last 5xx is returned.
    """
    attempt = 0
    while True:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            if attempt >= settings.retries:
                raise
        else:
            if response.status_code < 500 or attempt >= settings.retries:
                return response
        await asyncio.sleep(settings.backoff * 2**attempt)
        attempt += 1


def dig(payload: Any, path: str) -> Any:
    """The value at a dotted path (``data.readings``; list indexes allowed: ``items.0``)."""
    for part in filter(None, path.split(".")):
        if isinstance(payload, Mapping) and part in payload:
            payload = payload[part]
        elif isinstance(payload, list) and part.isdigit() and int(part) < len(payload):
            payload = payload[int(part)]
        else:
            raise RestError(f"no '{part}' in the response at path '{path}'")
    return payload


def to_long(payload: Any, mapping: RecordMap, sensor: str = "") -> pd.DataFrame:
    """Records (or one record) as a long frame; wide records are melted, one row per field.

    ``sensor`` names readings whose record has no sensor field (the endpoint's name).
    """
    records = dig(payload, mapping.records_path)
    if isinstance(records, Mapping):
        records = [records]
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise RestError(f"expected a list of JSON objects, got {type(records).__name__}")
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=["timestamp", "sensor", "value"])
    ts_field, value_field = mapping.timestamp_field, mapping.value_field
    now = pd.Timestamp.now(tz="UTC")
    times = (
        _times(frame.pop(ts_field), now, mapping.timestamp_unit)
        if ts_field in frame
        else pd.Series(now, index=frame.index)
    )
    long = mapping.shape == "long" or (mapping.shape == "auto" and value_field in frame)
    if long:
        if value_field not in frame:
            raise RestError(f"records have no '{value_field}' field")
        sensors = frame.pop(mapping.sensor_field) if mapping.sensor_field in frame else sensor
        out = pd.DataFrame({"timestamp": times, "sensor": sensors, "value": frame.pop(value_field)})
        return pd.concat([out, frame], axis=1)
    values = frame.select_dtypes("number")
    if values.empty:
        raise RestError("records have no numeric fields to read as values")
    wide = values.assign(timestamp=times)
    out = wide.melt(id_vars="timestamp", var_name="sensor", value_name="value")
    return out.dropna(subset=["value"]).reset_index(drop=True)


def epoch_unit(values: pd.Series, unit: TimeUnit) -> str:
    """The epoch unit of a numeric column: ``unit`` itself, or for ``auto`` by magnitude."""
    if unit != "auto":
        return unit
    largest = values.abs().max()
    for bound, name in AUTO_UNITS:
        if largest >= bound:
            return name
    return "s"


def _times(values: pd.Series, now: pd.Timestamp, unit: TimeUnit = "auto") -> pd.Series:
    """ISO 8601 text or epoch numbers (``unit``) as UTC timestamps; missing ones become ``now``."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        times = pd.to_datetime(values, unit=epoch_unit(values, unit), utc=True)
        # nanoseconds, like every other timestamp column; a wrong unit (ms read as s: the year
        # 57971) is out of that range and raises, so the response goes to the error port
        return times.dt.as_unit("ns").fillna(now)
    return pd.to_datetime(values.astype(object).fillna(now), utc=True, format="ISO8601")


class RestPoller:
    """GETs each endpoint and turns the JSON into long frames; bad responses become errors."""

    def __init__(
        self, base_url: str, endpoints: Sequence[str], settings: RestSettings, mapping: RecordMap
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/" if base_url else ""
        self.endpoints = list(endpoints) or [""]
        self.settings = settings
        self.mapping = mapping
        self.client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self.client = make_client(self.settings, self.base_url)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def poll(self) -> tuple[pd.DataFrame | None, list[RestError]]:
        """One cycle over all endpoints: the readings, plus one error per unusable response."""
        assert self.client is not None, "open() first"
        frames: list[pd.DataFrame] = []
        errors: list[RestError] = []
        for endpoint in self.endpoints:
            response = await request(self.client, self.settings, "GET", endpoint.lstrip("/"))
            try:
                frames.append(self.parse(response, endpoint))
            except RestError as exc:
                errors.append(exc)
        frames = [f for f in frames if not f.empty]
        return (pd.concat(frames, ignore_index=True) if frames else None), errors

    def parse(self, response: httpx.Response, endpoint: str) -> pd.DataFrame:
        where = f"{endpoint or self.base_url}: HTTP {response.status_code}"
        body = response.text[:500]
        if response.status_code >= 400:
            raise RestError(where, response.status_code, body)
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RestError(f"{where}: not JSON", response.status_code, body) from None
        sensor = endpoint.strip("/").rsplit("/", 1)[-1]
        try:
            return to_long(payload, self.mapping, sensor)
        except (RestError, ValueError, TypeError) as exc:
            raise RestError(f"{where}: {exc}", response.status_code, body) from None


def error_frame(errors: Sequence[RestError]) -> pd.DataFrame:
    """The rows sent to the ``error`` port: status code, message and the start of the body."""
    return pd.DataFrame(
        {
            "status_code": [e.status for e in errors],
            "error": [str(e) for e in errors],
            "body": [e.body for e in errors],
        }
    )


async def post_frame(
    client: httpx.AsyncClient, settings: RestSettings, url: str, frame: pd.DataFrame, max_rows: int
) -> int:
    """POST ``frame`` as JSON records in chunks of ``max_rows``; returns the requests made.

    A 4xx, or a 5xx still failing after the retries, raises :class:`RestError`.
    """
    requests = 0
    for start in range(0, len(frame), max_rows):
        chunk = frame.iloc[start : start + max_rows]
        body = chunk.to_json(orient="records", date_format="iso", date_unit="us")
        response = await request(
            client,
            settings,
            "POST",
            url,
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        requests += 1
        if response.status_code >= 400:
            raise RestError(
                f"POST {url}: HTTP {response.status_code}", response.status_code, response.text
            )
    return requests


class RESTConnector(BaseDataConnector):
    """The seed's REST connector: ``base_url``, ``endpoints``, ``headers``, ``timeout``."""

    label = "REST"

    def _poller(self) -> RestPoller:
        cfg = self.config
        settings = RestSettings(
            headers=dict(cfg.get("headers") or {}),
            timeout=float(cfg.get("timeout", 10.0)),
            token=cfg.get("token"),
            username=cfg.get("username"),
            password=cfg.get("password"),
            retries=int(cfg.get("retries", 3)),
        )
        mapping = RecordMap(
            records_path=cfg.get("records_path", ""),
            sensor_field=cfg.get("sensor_field", "sensor"),
            value_field=cfg.get("value_field", "value"),
            timestamp_field=cfg.get("timestamp_field", "timestamp"),
            timestamp_unit=cfg.get("timestamp_unit", "auto"),
        )
        return RestPoller(cfg["base_url"], cfg.get("endpoints") or [""], settings, mapping)

    async def _connect(self) -> None:
        self.poller = self._poller()
        await self.poller.open()

    async def _read(self) -> pd.DataFrame | None:
        frame, errors = await self.poller.poll()
        for error in errors:
            log.warning("Could not parse REST response: %s", error)
        return frame

    async def _disconnect(self) -> None:
        await self.poller.close()
