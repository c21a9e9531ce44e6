"""REST source and sink against a real HTTP server (uvicorn + starlette) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
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

from flowengine.connectors import RESTConnector
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from tests.helpers.peers import free_port, until, wait_until

TOKEN = "s3cret-token"
T0 = pd.Timestamp("2026-01-01T00:00:00Z")


@dataclass
class ApiState:
    """What the test API has served and received."""

    seq: int = 0
    flaky: int = 0
    fail_first: int = 2
    posted: list[list[dict[str, Any]]] = field(default_factory=list)
    hook_fail: int = 0
    slow: float = 0.0  # seconds /slow waits before answering
    slow_hits: int = 0


def make_app(state: ApiState) -> Starlette:
    def reading(n: int) -> dict[str, Any]:
        return {
            "sensor": "t1",
            "value": float(n),
            "timestamp": (T0 + pd.Timedelta(n, "s")).isoformat(),
        }

    async def readings(request: Request) -> Response:
        state.seq += 1
        return JSONResponse({"data": {"readings": [reading(state.seq)]}})

    async def flaky(request: Request) -> Response:
        state.flaky += 1
        if state.flaky <= state.fail_first:
            return PlainTextResponse("overloaded", status_code=503)
        return JSONResponse([reading(7)])

    async def wide(request: Request) -> Response:
        return JSONResponse([{"timestamp": T0.isoformat(), "t1": 1.0, "t2": 2.5, "label": "x"}])

    async def single(request: Request) -> Response:
        name = request.path_params["name"]
        value = {"temperature": 1250.0, "pressure": 2.1}.get(name, 0.0)
        return JSONResponse({"value": value, "timestamp": T0.isoformat()})

    async def bearer(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        return JSONResponse([reading(1)])

    async def basic(request: Request) -> Response:
        expected = "Basic " + base64.b64encode(b"operator:pw!").decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        return JSONResponse([reading(2)])

    async def hook(request: Request) -> Response:
        if state.hook_fail > 0:
            state.hook_fail -= 1
            return PlainTextResponse("busy", status_code=502)
        state.posted.append(json.loads(await request.body()))
        return Response(status_code=204)

    async def epoch(request: Request) -> Response:
        scale = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[request.path_params["unit"]]
        stamp = (T0 + pd.Timedelta(250, "ms")).value // (10**9 // scale)
        if scale == 1:
            stamp = (T0 + pd.Timedelta(250, "ms")).value / 10**9  # a float: 1767225600.25
        return JSONResponse([{"sensor": "t1", "value": 1.0, "timestamp": stamp}])

    async def slow(request: Request) -> Response:
        state.slow_hits += 1
        if state.slow:
            await asyncio.sleep(state.slow)
        state.seq += 1
        return JSONResponse([reading(state.seq)])

    async def reject(request: Request) -> Response:
        return JSONResponse({"detail": "bad payload"}, status_code=422)

    return Starlette(
        routes=[
            Route("/readings", readings),
            Route("/flaky", flaky),
            Route("/wide", wide),
            Route("/text", lambda r: PlainTextResponse("<html>maintenance</html>")),
            Route("/shape", lambda r: JSONResponse([5, 6])),
            Route("/bearer", bearer),
            Route("/basic", basic),
            Route("/sensors/{name}", single),
            Route("/epoch/{unit}", epoch),
            Route("/slow", slow),
            Route("/hook", hook, methods=["POST"]),
            Route("/reject", reject, methods=["POST"]),
        ]
    )


class ApiServer:
    """uvicorn serving the test app in a background thread; stoppable and restartable."""

    def __init__(self, port: int, state: ApiState | None = None) -> None:
        self.port = port
        self.state = state or ApiState()
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> ApiServer:
        config = uvicorn.Config(
            make_app(self.state), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)  # in a thread, uvicorn installs no signal handlers
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "the HTTP server")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(free_port()).start()
    yield server
    server.stop()


def source(api: ApiServer, **cfg: Any) -> dict[str, Any]:
    return {
        "src": {
            "type": "rest_in",
            "base_url": api.url,
            "polls": 1,
            "poll_interval": 0.01,
            "wires": ["cap"],
            **cfg,
        },
        "cap": {"type": "capture"},
    }


def test_seed_rest_example_as_written(api: ApiServer):
    rest_config = {
        "base_url": f"{api.url}/sensors",  # 'https://api.sensors.com' in the seed
        "endpoints": ["temperature", "pressure"],
        "headers": {"Authorization": "Bearer token"},
        "timeout": 10.0,
    }
    rest = RESTConnector(rest_config)
    if rest.connect():
        data = rest.read_data()  # Poll all endpoints
        rest.disconnect()
    assert data is not None
    assert data["sensor"].tolist() == ["temperature", "pressure"]
    assert data["value"].tolist() == [1250.0, 2.1]
    assert (data["timestamp"] == T0).all()
    assert set(data["source"]) == {"RESTConnector"}


def test_records_path_values_timestamps_and_row_counts(api: ApiServer):
    result = run_flow(source(api, endpoints=["readings"], records_path="data.readings", polls=3))
    frame = result.frame("cap")
    assert frame["value"].tolist() == [1.0, 2.0, 3.0]
    assert frame["sensor"].tolist() == ["t1"] * 3
    assert frame["timestamp"].tolist() == [T0 + pd.Timedelta(n, "s") for n in (1, 2, 3)]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert result.stats("src")["rows_out"] == 3


def test_wide_records_are_melted(api: ApiServer):
    frame = run_flow(source(api, endpoints=["wide"])).frame("cap")
    assert sorted(zip(frame["sensor"], frame["value"], strict=True)) == [("t1", 1.0), ("t2", 2.5)]
    assert (frame["timestamp"] == T0).all()


def test_5xx_is_retried_with_backoff_then_succeeds(api: ApiServer):
    result = run_flow(source(api, endpoints=["flaky"], retries=3, backoff=0.01))
    assert api.state.flaky == 3
    assert result.frame("cap")["value"].tolist() == [7.0]


def test_5xx_after_the_retries_goes_to_error_port(api: ApiServer):
    api.state.fail_first = 100
    nodes = source(api, endpoints=["flaky"], retries=2, backoff=0.01)
    nodes["src"]["wires"] = {"out": ["cap"], "error": ["bad"]}
    nodes["bad"] = {"type": "capture"}
    result = run_flow(nodes)
    assert api.state.flaky == 3
    assert result.frame("bad")["status_code"].tolist() == [503]


@pytest.mark.parametrize(
    ("endpoint", "status", "text"),
    [
        ("text", 200, "not JSON"),
        ("shape", 200, "list of JSON objects"),
        ("bearer", 401, "HTTP 401"),
    ],
)
def test_unusable_responses_go_to_error_port_with_status(api: ApiServer, endpoint, status, text):
    nodes = source(api, endpoints=[endpoint, "wide"])
    nodes["src"]["wires"] = {"out": ["cap"], "error": ["bad"]}
    nodes["bad"] = {"type": "capture"}
    result = run_flow(nodes)
    bad = result.batches("bad")
    assert len(bad) == 1 and text in bad[0].error
    assert bad[0].frame["status_code"].tolist() == [status]
    # the good endpoint of the same poll still delivers
    assert len(result.frame("cap")) == 2


def test_bearer_and_basic_auth(api: ApiServer):
    ok = run_flow(source(api, endpoints=["bearer"], token=TOKEN)).frame("cap")
    assert ok["value"].tolist() == [1.0]
    ok = run_flow(source(api, endpoints=["basic"], username="operator", password="pw!")).frame(
        "cap"
    )
    assert ok["value"].tolist() == [2.0]


def test_sink_posts_batches_as_json_in_chunks(api: ApiServer):
    rows = [
        {"sensor": "t1", "value": float(i), "timestamp": "2026-01-01T00:00:00Z"} for i in range(5)
    ]
    result = run_flow(
        {
            "src": {"type": "inject", "rows": rows, "wires": ["hook"]},
            "hook": {"type": "rest_out", "url": f"{api.url}/hook", "max_rows": 2, "token": TOKEN},
        }
    )
    assert [len(p) for p in api.state.posted] == [2, 2, 1]
    posted = [r for p in api.state.posted for r in p]
    assert [r["value"] for r in posted] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert pd.Timestamp(posted[0]["timestamp"]) == T0
    assert result.stats("hook")["errors"] == 0


def test_sink_retries_5xx_and_routes_4xx_to_error(api: ApiServer):
    api.state.hook_fail = 2
    result = run_flow(
        {
            "src": {
                "type": "inject",
                "rows": [{"sensor": "a", "value": 1.0}],
                "wires": ["hook", "rej"],
            },
            "hook": {"type": "rest_out", "url": f"{api.url}/hook", "backoff": 0.01},
            "rej": {"type": "rest_out", "url": f"{api.url}/reject", "wires": {"error": ["bad"]}},
            "bad": {"type": "capture"},
        }
    )
    assert len(api.state.posted) == 1
    bad = result.batches("bad")
    assert len(bad) == 1 and "HTTP 422" in bad[0].error


def test_server_restart_source_retries_and_resumes():
    port = free_port()
    first = ApiServer(port).start()
    flow = {
        "settings": {"retry": {"initial": 0.1, "max": 0.3}},
        "nodes": {
            "src": {
                "type": "rest_in",
                "base_url": first.url,
                "endpoints": ["readings"],
                "records_path": "data.readings",
                "poll_interval": 0.05,
                "timeout": 2.0,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        },
    }
    runtime = Runtime(check_text(flow))
    cap = runtime.node("cap")
    second = ApiServer(port, ApiState(seq=1000))

    async def main() -> None:
        task = asyncio.create_task(runtime.run())

        await until(lambda: len(cap.batches) >= 3, task, what="rows before the restart")
        await asyncio.to_thread(first.stop)
        await until(lambda: runtime.stats["src"].state == "retrying", task, what="retrying")
        await asyncio.to_thread(second.start)
        await until(
            lambda: any(b.frame["value"].iloc[0] > 1000 for b in cap.batches),
            task,
            what="rows after",
        )
        runtime.stop()
        await task

    try:
        asyncio.run(main())
    finally:
        second.stop()
    values = [v for b in cap.batches for v in b.frame["value"]]
    before = [v for v in values if v < 1000]
    after = [v for v in values if v > 1000]
    assert before == [float(i) for i in range(1, len(before) + 1)]
    assert after == [float(i) for i in range(1001, 1001 + len(after))]
    assert runtime.stats["src"].retries >= 1


@pytest.mark.parametrize(
    ("unit", "option"),
    [("s", "auto"), ("ms", "auto"), ("us", "auto"), ("ns", "auto"), ("ms", "ms"), ("s", "s")],
)
def test_epoch_timestamp_units(api: ApiServer, unit: str, option: str):
    frame = run_flow(source(api, endpoints=[f"epoch/{unit}"], timestamp_unit=option)).frame("cap")
    assert frame["timestamp"].tolist() == [T0 + pd.Timedelta(250, "ms")]
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_wrong_epoch_unit_goes_to_error_port(api: ApiServer):
    nodes = source(api, endpoints=["epoch/ms"], timestamp_unit="s")  # ms read as s: year 57970
    nodes["src"]["wires"] = {"out": ["cap"], "error": ["bad"]}
    nodes["bad"] = {"type": "capture"}
    result = run_flow(nodes)
    assert not result.batches("cap")
    assert result.frame("bad")["status_code"].tolist() == [200]
    assert "Out of bounds" in result.batches("bad")[0].error


def test_timeout_on_every_retry_retries_the_source_then_resumes(api: ApiServer):
    """A poll whose requests all time out raises: the node shows `retrying` (it is not a
    response, so nothing goes to the error port) and polls again once the endpoint is fast."""
    api.state.slow = 1.0
    flow = {
        "settings": {"retry": {"initial": 0.1, "max": 0.2}},
        "nodes": {
            "src": {
                "type": "rest_in",
                "base_url": api.url,
                "endpoints": ["slow"],
                "timeout": 0.1,
                "retries": 1,
                "backoff": 0.01,
                "poll_interval": 0.05,
                "wires": {"out": ["cap"], "error": ["bad"]},
            },
            "cap": {"type": "capture"},
            "bad": {"type": "capture"},
        },
    }
    runtime = Runtime(check_text(flow))
    cap, bad = runtime.node("cap"), runtime.node("bad")
    stats = runtime.stats["src"]

    async def main() -> None:
        task = asyncio.create_task(runtime.run())

        await until(lambda: stats.retries >= 2, task, what="two failed polls")
        assert stats.state == "retrying" and "Timeout" in stats.last_error
        hits = api.state.slow_hits
        assert hits >= 4 and not cap.batches and not bad.batches  # 1 + retries per poll
        api.state.slow = 0.0
        await until(
            lambda: len(cap.batches) >= 3, task, what="polls after the endpoint is fast again"
        )
        assert stats.state == "ok" and not task.done()
        runtime.stop()
        await task

    asyncio.run(main())
    assert not bad.batches
    values = [v for b in cap.batches for v in b.frame["value"]]
    assert values == sorted(values) and len(values) >= 3
