"""REST over httpx: polling JSON endpoints into the long format, and POSTing batches as JSON.

One client serves the ``rest_in``/``rest_out`` nodes and the seed's :class:`RESTConnector`.
Retries inside one call are bounded and only for what a retry can fix (5xx, timeouts); a refused
connection raises at once so the runtime's backoff takes over and the node shows ``retrying``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pandas as pd

from flowengine.compression import Codec, CompressionError, Decoder, compress
from flowengine.extras import LibraryMissing
from flowengine.nodes.rest.parse import PREVIEW, RecordMap, RestError, parse_response

#: Content-Encoding values decoded here, bounded (httpx decodes the others).
_CODINGS: dict[str, Literal["gzip", "zstd"]] = {"gzip": "gzip", "zstd": "zstd"}


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
    client: httpx.AsyncClient,
    settings: RestSettings,
    method: str,
    url: str,
    max_bytes: int | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send with bounded retries and exponential backoff on 5xx and timeouts.

    A refused connection raises ``httpx.ConnectError`` at once; the last 5xx is returned. With
    ``max_bytes``, a (decompressed) body larger than that raises :class:`RestError` after
    reading no more than that: an endless or gzip-bombed response cannot exhaust memory.
    """
    attempt = 0
    while True:
        try:
            response = await _send(client, method, url, max_bytes, **kwargs)
        except httpx.TimeoutException:
            if attempt >= settings.retries:
                raise
        else:
            if response.status_code < 500 or attempt >= settings.retries:
                return response
        await asyncio.sleep(settings.backoff * 2**attempt)
        attempt += 1


async def _send(
    client: httpx.AsyncClient, method: str, url: str, max_bytes: int | None, **kwargs: Any
) -> httpx.Response:
    if max_bytes is None:
        return await client.request(method, url, **kwargs)
    sent = client.build_request(method, url, **kwargs)
    streamed = await client.send(sent, stream=True)
    try:
        body = await _read(streamed, url, max_bytes)
    finally:
        await streamed.aclose()
    headers = [(k, v) for k, v in streamed.headers.items() if k.lower() != "content-encoding"]
    return httpx.Response(streamed.status_code, headers=headers, content=bytes(body), request=sent)


async def _read(streamed: httpx.Response, url: str, max_bytes: int) -> bytearray:
    """The decoded body, or :class:`RestError` past ``max_bytes`` or when it does not decode.

    gzip and zstd are decoded here, in bounded pieces: httpx's zstd decoder expands each chunk
    whole, and 64 kB of zstd can hold gigabytes.
    """
    encoding = streamed.headers.get("content-encoding", "").strip().lower()
    coding = _CODINGS.get(encoding)
    body = bytearray()
    decoder: Decoder | None = None
    try:
        decoder = Decoder(coding, max_bytes) if coding else None
        async for chunk in streamed.aiter_raw() if decoder else streamed.aiter_bytes():
            body += b"".join(decoder.feed(chunk)) if decoder else chunk
            if len(body) > max_bytes:
                break
        else:
            if decoder:
                decoder.finish()
    except (CompressionError, httpx.DecodingError, LibraryMissing) as exc:
        if decoder is None or decoder.size <= max_bytes:
            raise RestError(
                f"{url}: HTTP {streamed.status_code}: body does not decode as {encoding}: {exc}",
                streamed.status_code,
            ) from None
    if len(body) > max_bytes or (decoder is not None and decoder.size > max_bytes):
        raise RestError(
            f"{url}: HTTP {streamed.status_code}: response larger than "
            f"max_response_bytes ({max_bytes})",
            streamed.status_code,
            body[:PREVIEW].decode("utf-8", errors="replace"),
        )
    return body


class RestPoller:
    """GETs each endpoint and turns the JSON into long frames; bad responses become errors."""

    def __init__(
        self,
        base_url: str,
        endpoints: Sequence[str],
        settings: RestSettings,
        mapping: RecordMap,
        max_bytes: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/" if base_url else ""
        self.endpoints = list(endpoints) or [""]
        self.settings = settings
        self.mapping = mapping
        self.max_bytes = max_bytes
        self.client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        """Open the pooled HTTP client (``poll`` needs it)."""
        self.client = make_client(self.settings, self.base_url)

    async def close(self) -> None:
        """Close the pooled client; safe to call twice."""
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def poll(self) -> tuple[pd.DataFrame | None, list[RestError]]:
        """One cycle over all endpoints: the readings, plus one error per unusable response or
        record."""
        assert self.client is not None, "open() first"
        frames: list[pd.DataFrame] = []
        errors: list[RestError] = []
        for endpoint in self.endpoints:
            try:
                response = await request(
                    self.client, self.settings, "GET", endpoint.lstrip("/"), self.max_bytes
                )
                frame, bad = parse_response(response, endpoint, self.base_url, self.mapping)
            except RestError as exc:
                errors.append(exc)
                continue
            frames.append(frame)
            errors.extend(bad)
        frames = [f for f in frames if not f.empty]
        return (pd.concat(frames, ignore_index=True) if frames else None), errors


async def post_frame(
    client: httpx.AsyncClient,
    settings: RestSettings,
    url: str,
    frame: pd.DataFrame,
    max_rows: int,
    codec: Codec = "none",
    level: int | None = None,
) -> int:
    """POST ``frame`` as JSON records in chunks of ``max_rows``, each body compressed with
    ``codec`` (and ``Content-Encoding`` set); returns the requests made.

    A 4xx, or a 5xx still failing after the retries, raises :class:`RestError`.
    """
    headers = {"Content-Type": "application/json"}
    if codec != "none":
        headers["Content-Encoding"] = codec
    requests = 0
    for start in range(0, len(frame), max_rows):
        chunk = frame.iloc[start : start + max_rows]
        body = chunk.to_json(orient="records", date_format="iso", date_unit="us")
        content = compress(body.encode(), codec, level)
        response = await request(client, settings, "POST", url, content=content, headers=headers)
        requests += 1
        if response.status_code == 415 and codec != "none":
            raise RestError(
                f"POST {url}: HTTP 415: the server refuses the body; it may not accept "
                f"Content-Encoding: {codec} (set compression: none)",
                415,
                response.text,
            )
        if response.status_code >= 400:
            raise RestError(
                f"POST {url}: HTTP {response.status_code}", response.status_code, response.text
            )
    return requests
