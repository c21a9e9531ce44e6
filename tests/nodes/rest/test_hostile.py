"""Hostile REST responses against a real local HTTP server: mixed timestamps, numeric text,
non-finite numbers, deep nesting, invalid UTF-8, oversized bodies. A bad record goes to the
error port on its own; a bad response never restarts the source."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowengine.nodes.rest.parse import RecordMap, RestError, parse_response
from flowengine.testing import run_flow

T0 = "2026-01-01T00:00:00Z"
MIXED = [
    {"sensor": "iso", "value": 1.0, "timestamp": T0},
    {"sensor": "epoch_s", "value": 2, "timestamp": 1767225600},
    {"sensor": "epoch_ms", "value": "3.5", "timestamp": 1767225600000},
    {"sensor": "no_time", "value": 4, "timestamp": None},
    {"sensor": "nan", "value": float("nan"), "timestamp": T0},
    {"sensor": "huge", "value": 10**400, "timestamp": T0},
    {"sensor": "garbage_time", "value": 5, "timestamp": "yesterday-ish"},
    {"sensor": "text", "value": "hot", "timestamp": T0},
]
BODIES: dict[str, bytes] = {
    "/mixed": json.dumps(MIXED).encode(),  # json.dumps writes NaN, as some APIs do
    "/deep": b"[" * 2000 + b"]" * 2000,
    "/utf8": b'[{"sensor": "\xff", "value": 1}]',
    "/big": b'[{"value": 1, "pad": "' + b"x" * 300_000 + b'"}]',
    "/good": json.dumps([{"sensor": "ok", "value": 7, "timestamp": T0}]).encode(),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = BODIES.get(self.path, b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _flow(url: str, endpoints: list[str], **cfg: Any) -> dict[str, Any]:
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


def test_mixed_records_are_parsed_row_by_row(url: str) -> None:
    result = run_flow(_flow(url, ["mixed"]))
    out = result.frame("cap").set_index("sensor")
    assert list(out.index) == ["iso", "epoch_s", "epoch_ms", "no_time", "nan", "huge"]
    assert out["value"].tolist()[:4] == [1.0, 2.0, 3.5, 4.0]  # numeric text is a number
    assert out["quality"].tolist() == ["good", "good", "good", "bad", "bad", "bad"]
    assert (out["timestamp"].iloc[:3] == out["timestamp"].iloc[0]).all()
    errors = result.frame("bad")
    assert [e.split(": ", 2)[-1][:20] for e in errors["error"]] == [
        "record 6: bad timest",
        "record 7: value is n",
    ]
    assert "garbage_time" in errors["body"][0]
    stats = result.stats("src")
    assert stats["errors"] == 2 and stats["retries"] == 0


def test_non_finite_error_policy_sends_the_records_to_the_error_port(url: str) -> None:
    result = run_flow(_flow(url, ["mixed"], non_finite="error"))
    assert "nan" not in set(result.frame("cap")["sensor"])
    assert len(result.frame("bad")) == 4  # nan, huge, garbage time, text


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [("deep", "nested too deeply"), ("utf8", "not JSON"), ("big", "max_response_bytes")],
)
def test_hostile_responses_go_to_the_error_port_and_the_poll_goes_on(
    url: str, endpoint: str, reason: str
) -> None:
    result = run_flow(_flow(url, [endpoint, "good"], max_response_bytes=100_000))
    assert result.frame("cap")["value"].tolist() == [7.0]
    bad = result.frame("bad")
    assert len(bad) == 1 and reason in bad["error"][0]
    assert len(bad["body"][0]) <= 500
    assert result.stats("src")["retries"] == 0 and result.stats("src")["errors"] == 1


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
stamps = scalars | st.datetimes().map(lambda d: d.isoformat()) | st.integers(0, 2 * 10**18)
records = st.fixed_dictionaries(
    {},
    optional={"sensor": scalars, "value": scalars, "timestamp": stamps, "x": scalars},
)


@settings(
    max_examples=200,
    deadline=3000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(records, max_size=8) | st.binary(max_size=200),
    st.sampled_from(["auto", "long", "wide"]),
    st.sampled_from(["bad", "error", "keep"]),
)
def test_fuzz_parse_response_accounts_for_every_record(
    payload: Any, shape: Any, policy: Any
) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = httpx.Response(200, content=body, request=httpx.Request("GET", "http://x/e"))
    mapping = RecordMap(shape=shape, non_finite=policy)
    try:
        frame, errors = parse_response(response, "e", "http://x/", mapping)
    except RestError:
        return  # the whole response is unusable: one error row
    assert set(frame["quality"]) <= {"good", "bad"}
    if shape == "long" and isinstance(payload, list):  # one row per record, or one error
        assert len(frame) + len(errors) == len(payload)
