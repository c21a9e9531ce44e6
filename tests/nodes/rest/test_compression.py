"""REST with gzip and zstd against a real HTTP server (uvicorn + starlette) on 127.0.0.1:
`rest_out` bodies decoded by the server with the codecs' own libraries, a server answering 415,
`rest_in` reading encoded responses, and hostile ones (corrupt, a zstd bomb) on the error port.
"""

from __future__ import annotations

import gzip
import json
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from flowengine.testing import check_text, run_flow
from tests.helpers.peers import free_port, wait_until

zstandard = pytest.importorskip("zstandard", reason="zstd needs flowengine[zstd] (zstandard)")

T0 = "2026-01-01T00:00:00+00:00"
READINGS = [{"sensor": "t1", "value": 1.5, "timestamp": T0}, {"sensor": "t2", "value": 2.5}]


def encode(data: bytes, coding: str) -> bytes:
    """Compressed by the codec's own library (not flowengine's): the interoperability check."""
    if coding == "gzip":
        return gzip.compress(data)
    return bytes(zstandard.ZstdCompressor().compress(data))


def decode(data: bytes, coding: str) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    return bytes(zstandard.ZstdDecompressor().decompress(data))


@dataclass
class Received:
    """What the test server was sent: (Content-Encoding, raw size, decoded rows) per POST."""

    posts: list[tuple[str, int, list[dict[str, Any]]]] = field(default_factory=list)
    accept_encoding: list[str] = field(default_factory=list)


def make_app(got: Received) -> Starlette:
    async def hook(request: Request) -> Response:
        raw = await request.body()
        coding = request.headers.get("content-encoding", "")
        body = decode(raw, coding) if coding else raw
        got.posts.append((coding, len(raw), json.loads(body)))
        return Response(status_code=204)

    async def plain_only(request: Request) -> Response:
        if request.headers.get("content-encoding"):
            return PlainTextResponse("Unsupported Media Type", status_code=415)
        return Response(status_code=204)

    async def encoded(request: Request) -> Response:
        got.accept_encoding.append(request.headers.get("accept-encoding", ""))
        coding = request.path_params["coding"]
        body = encode(json.dumps(READINGS).encode(), coding)
        return Response(body, headers={"Content-Encoding": coding}, media_type="application/json")

    async def corrupt(request: Request) -> Response:
        coding = request.path_params["coding"]
        body = bytearray(encode(json.dumps(READINGS * 50).encode(), coding))
        body[len(body) // 2 :] = b"\x00" * (len(body) - len(body) // 2)
        return Response(bytes(body), headers={"Content-Encoding": coding})

    async def bomb(request: Request) -> Response:
        frame = zstandard.ZstdCompressor(level=19).compress(b" " * (16 << 20))
        return Response(frame * 64, headers={"Content-Encoding": "zstd"})  # 1 GiB of spaces

    return Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/plain-only", plain_only, methods=["POST"]),
            Route("/encoded/{coding}", encoded),
            Route("/corrupt/{coding}", corrupt),
            Route("/bomb", bomb),
            Route("/plain", lambda r: JSONResponse(READINGS)),
        ]
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Received]]:
    got = Received()
    port = free_port()
    config = uvicorn.Config(make_app(got), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_until(lambda: running.started, 10, "the HTTP server")
    yield f"http://127.0.0.1:{port}", got
    running.should_exit = True
    thread.join(10)


def sink_flow(url: str, rows: list[dict[str, Any]], **cfg: Any) -> dict[str, Any]:
    return {
        "src": {"type": "inject", "rows": rows, "wires": ["hook"]},
        "hook": {"type": "rest_out", "url": url, **cfg, "wires": {"error": ["bad"]}},
        "bad": {"type": "capture"},
    }


def source_flow(url: str, endpoints: list[str], **cfg: Any) -> dict[str, Any]:
    return {
        "src": {
            "type": "rest_in",
            "base_url": url,
            "endpoints": endpoints,
            "polls": 1,
            **cfg,
            "wires": {"out": ["cap"], "error": ["bad"]},
        },
        "cap": {"type": "capture"},
        "bad": {"type": "capture"},
    }


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_rest_out_compresses_bodies_the_server_decodes_to_the_rows(
    server: tuple[str, Received], coding: str
) -> None:
    url, got = server
    got.posts.clear()
    rows = [
        {"sensor": f"t{i % 3}", "value": i + 0.5, "timestamp": "2026-01-01T00:00:00Z"}
        for i in range(500)
    ]
    result = run_flow(
        sink_flow(f"{url}/hook", rows, compression=coding, compression_level=3, max_rows=200)
    )
    assert result.stats("hook")["errors"] == 0 and not result.batches("bad")
    assert [(c, len(r)) for c, _, r in got.posts] == [(coding, 200), (coding, 200), (coding, 100)]
    posted = [r for _, _, batch in got.posts for r in batch]
    assert [(r["sensor"], r["value"]) for r in posted] == [(r["sensor"], r["value"]) for r in rows]
    assert pd.Timestamp(posted[0]["timestamp"]) == pd.Timestamp("2026-01-01T00:00:00Z")
    plain = len(json.dumps(posted[:200], separators=(",", ":")))
    assert got.posts[0][1] < plain / 4  # it was really compressed


def test_rest_out_without_compression_sends_no_content_encoding(
    server: tuple[str, Received],
) -> None:
    url, got = server
    got.posts.clear()
    run_flow(sink_flow(f"{url}/hook", READINGS))
    assert [(c, r[0]["sensor"]) for c, _, r in got.posts] == [("", "t1")]


def test_rest_out_415_goes_to_the_error_port_naming_the_encoding(
    server: tuple[str, Received],
) -> None:
    url, _ = server
    result = run_flow(sink_flow(f"{url}/plain-only", READINGS, compression="gzip"))
    bad = result.batches("bad")
    assert len(bad) == 1 and bad[0].frame["sensor"].tolist() == ["t1", "t2"]
    assert "HTTP 415" in bad[0].error and "Content-Encoding: gzip" in bad[0].error
    assert "compression: none" in bad[0].error
    assert result.stats("hook")["retries"] == 0  # the batch's fault, not the server's


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_rest_in_reads_encoded_responses(server: tuple[str, Received], coding: str) -> None:
    url, got = server
    result = run_flow(source_flow(url, [f"encoded/{coding}", "plain"]))
    frame = result.frame("cap")
    assert frame["value"].tolist() == [1.5, 2.5, 1.5, 2.5]
    assert not result.batches("bad")
    assert coding in got.accept_encoding[-1]  # httpx offers zstd once zstandard is installed


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_rest_in_corrupt_encoded_response_goes_to_the_error_port(
    server: tuple[str, Received], coding: str
) -> None:
    url, _ = server
    result = run_flow(source_flow(url, [f"corrupt/{coding}", "plain"]))
    assert result.frame("cap")["value"].tolist() == [1.5, 2.5]  # the next endpoint still read
    errors = result.frame("bad")
    assert len(errors) == 1 and f"body does not decode as {coding}" in errors["error"].iloc[0]
    assert result.stats("src")["retries"] == 0  # a bad response never restarts the source


def test_rest_in_zstd_bomb_stops_at_max_response_bytes(server: tuple[str, Received]) -> None:
    """1 GiB packed in 34 kB: decoded in bounded pieces (httpx alone would expand it whole)."""
    url, _ = server
    tracemalloc.start()
    try:
        result = run_flow(source_flow(url, ["bomb", "plain"], max_response_bytes=1_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    errors = result.frame("bad")
    assert "response larger than max_response_bytes (1000000)" in errors["error"].iloc[0]
    assert result.frame("cap")["value"].tolist() == [1.5, 2.5]
    assert peak < 256 << 20


def test_bad_compression_config_names_the_field() -> None:
    checked = check_text(
        {
            "hook": {
                "type": "rest_out",
                "url": "http://x",
                "compression": "zstd",
                "compression_level": 30,
            }
        }
    )
    text = " | ".join(p.message for p in checked.problems)
    assert "field 'compression_level'" in text
    checked = check_text(
        {
            "hook": {
                "type": "rest_out",
                "url": "http://x",
                "compression": "gzip",
                "compression_level": 12,
            }
        }
    )
    assert "level 12 is out of range for gzip (1 to 9)" in " ".join(
        p.message for p in checked.problems
    )
