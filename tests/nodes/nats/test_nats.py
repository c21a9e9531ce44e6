"""nats_out and nats_in against a real NATS server with JetStream (the machine's on 4222, unique
streams deleted after each test; private servers where the test needs auth or TLS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.nodes.nats.codec import CONTENT_TYPE, MSG_ID, decode
from flowengine.nodes.nats.partition import partition_of
from flowengine.runtime import Runtime
from flowengine.testing import Counter, check_text, run_flow
from tests.helpers.nats import PrivateServer, stored, sync
from tests.helpers.peers import free_port, self_signed, until

Names = Callable[[], tuple[str, str]]
RETRY = {"retry": {"initial": 0.1, "max": 0.5}}


def rows(n: int, lines: int = 5, start: int = 0) -> list[dict[str, Any]]:
    """Long-format rows with a `seq` and a `line` column."""
    return [
        {
            "timestamp": f"2026-03-01T00:00:{(start + i) % 60:02d}Z",
            "sensor": f"s{(start + i) % 3}",
            "value": float(start + i),
            "quality": "good",
            "source": "test",
            "line": f"line{(start + i) % lines}",
            "seq": start + i,
        }
        for i in range(n)
    ]


def publish(url: str, stream: str, subject: str, batches: list[list[dict[str, Any]]], **opts: Any):
    """Run `frames -> nats_out` to the end; the flow's result."""
    out = {"type": "nats_out", "servers": url, "stream": stream, "subject": subject, **opts}
    return run_flow({"src": {"type": "frames", "frames": batches, "wires": ["out"]}, "out": out})


def consumer(url: str, stream: str, subject: str, **opts: Any) -> dict[str, Any]:
    return {
        "type": "nats_in",
        "servers": url,
        "stream": stream,
        "subject": subject,
        "durable": "test",
        "fetch_timeout": 0.2,
        "wires": ["cap"],
        **opts,
    }


def captured(runtime: Runtime, node: str = "cap") -> pd.DataFrame:
    batches = runtime.node(node).batches  # type: ignore[attr-defined]
    return pd.concat([b.frame for b in batches], ignore_index=True) if batches else pd.DataFrame()


def consume(nodes: dict[str, Any], until_rows: int, **settings: Any) -> Runtime:
    """Run a flow until its capture `cap` holds ``until_rows`` rows, then stop it cleanly."""
    flow = {"version": 1, "settings": {**RETRY, **settings}, "nodes": nodes}

    async def main() -> Runtime:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(captured(runtime)) >= until_rows, task, what=f"{until_rows} rows")
        runtime.stop()
        await task
        return runtime

    return asyncio.run(main())


@pytest.mark.parametrize("fmt", ["arrow", "json"])
def test_round_trip(nats_url: str, names: Names, fmt: str) -> None:
    stream, subject = names()
    batches = [rows(4, start=0), rows(1000, start=4), rows(1, start=1004)]
    done = publish(nats_url, stream, subject, batches, format=fmt)
    assert done.stats("out")["counters"]["published"] == 3
    kinds = {m.headers[CONTENT_TYPE] for m in stored(stream, nats_url)}
    assert kinds == {
        "application/vnd.apache.arrow.stream" if fmt == "arrow" else "application/json"
    }
    runtime = consume({"in": consumer(nats_url, stream, subject), "cap": {"type": "capture"}}, 1005)
    got = captured(runtime).sort_values("seq", ignore_index=True)
    expected = pd.DataFrame(rows(1005)).assign(
        timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True)
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert {b.topic for b in runtime.node("cap").batches} == {subject}  # type: ignore[attr-defined]


def test_a_batch_sent_again_is_dropped_by_its_msg_id(nats_url: str, names: Names) -> None:
    stream, subject = names()
    batches = [rows(10), rows(10, start=10)]
    publish(nats_url, stream, subject, batches)
    again = publish(nats_url, stream, subject, batches)  # a retry or a replay: the same bytes
    assert again.stats("out")["counters"] == {"published": 2, "duplicates_dropped": 2}
    msgs = stored(stream, nats_url)
    assert len(msgs) == 2 and len({m.headers[MSG_ID] for m in msgs}) == 2
    publish(nats_url, stream, subject, batches, dedup=False)
    assert len(stored(stream, nats_url)) == 4  # without ids the server keeps both


def _refused(nodes: dict[str, Any]) -> str:
    """The error of `out` once its start failed (the flow is stopped then)."""

    async def main() -> str:
        settings = {**RETRY, "drain_timeout": 1}  # the sink never starts: do not wait for it
        runtime = Runtime(check_text({"version": 1, "settings": settings, "nodes": nodes}))
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["out"].state == "retrying", task, what="a refusal")
        runtime.stop()
        await task
        return runtime.stats["out"].last_error

    return asyncio.run(main())


def test_a_stream_that_differs_is_refused_with_every_difference(
    nats_url: str, names: Names
) -> None:
    stream, subject = names()
    publish(nats_url, stream, subject, [rows(1)], max_age="1d", duplicate_window="1m")
    out = {
        "type": "nats_out",
        "servers": nats_url,
        "stream": stream,
        "subject": subject,
        "storage": "memory",
        "partition_by": "line",
        "partitions": 4,
    }
    src = {"type": "frames", "frames": [rows(1)], "wires": ["out"]}
    error = _refused({"src": src, "out": out})
    assert error.startswith(f"ValueError: stream {stream} on NATS server {nats_url} differs")
    for difference in (
        f"subjects is {subject} on the server, {subject}.* here",
        "storage is file on the server, memory here",
        "max_age is 1d on the server, 7d here",
        "duplicate_window is 1m on the server, 2m here",
        "partitions is none (not partitioned) on the server, 4 (by line) here",
        f"Nothing was changed: edit the stream on the server (nats stream edit {stream})",
    ):
        assert difference in error
    config = sync(lambda js: js.stream_info(stream), nats_url).config
    assert config.max_age == 86400 and config.storage == "file"  # untouched
    # manage_stream: false uses the stream as it is, unless subjects or partitions differ
    assert "partitions is none" in _refused({"src": src, "out": {**out, "manage_stream": False}})
    del out["partition_by"], out["partitions"]
    done = publish(nats_url, stream, subject, [rows(1, start=1)], manage_stream=False)
    assert done.stats("out")["counters"]["published"] == 1


def test_partitioned_rows_go_to_one_stable_subject_per_key(nats_url: str, names: Names) -> None:
    stream, subject = names()
    batches = [rows(40, lines=13, start=40 * i) for i in range(5)]
    publish(nats_url, stream, subject, batches, partition_by="line", partitions=4)
    info = sync(lambda js: js.stream_info(stream), nats_url).config
    assert info.subjects == [f"{subject}.*"]
    assert info.description == "flowengine partitions=4 partition_by=line"
    seen: dict[str, set[str]] = {}
    for msg in stored(stream, nats_url):
        part = int(msg.subject.rsplit(".", 1)[1])
        for line in decode(msg.data, msg.headers)["line"]:
            seen.setdefault(line, set()).add(msg.subject)
            assert partition_of(line, 4) == part
    assert len(seen) == 13 and all(len(subjects) == 1 for subjects in seen.values())


def test_a_worker_consumes_its_partitions_with_one_durable_consumer_each(
    nats_url: str, names: Names
) -> None:
    stream, subject = names()
    publish(nats_url, stream, subject, [rows(200, lines=13)], partition_by="line", partitions=4)
    mine = [r for r in rows(200, lines=13) if partition_of(r["line"], 4) % 2 == 1]
    nodes = {"in": consumer(nats_url, stream, subject, worker="1/2"), "cap": {"type": "capture"}}
    runtime = consume(nodes, len(mine))
    assert sorted(captured(runtime)["seq"]) == [r["seq"] for r in mine]
    topics = {b.topic for b in runtime.node("cap").batches}  # type: ignore[attr-defined]
    assert topics <= {f"{subject}.1", f"{subject}.3"}
    assert runtime.stats["in"].counters["lag"] == 0
    assert f"consuming p1, p3 of {stream} at " in runtime.stats["in"].text  # what it owns
    assert runtime.stats["in"].text.endswith("; lag 0")

    async def names_of(js: Any) -> list[str]:
        return sorted([c.name for c in await js.consumers_info(stream)])

    assert sync(names_of, nats_url) == ["test-1", "test-3"]


def test_messages_the_state_already_holds_are_skipped(
    nats_url: str, names: Names, tmp_path: Path
) -> None:
    """A checkpointed run keeps the last stream sequence applied; when the same messages come
    again (here: the consumer recreated from the start), they are skipped, and acked."""
    stream, subject = names()
    publish(nats_url, stream, subject, [rows(5), rows(5, start=5)])
    flow = tmp_path / "in.yaml"
    nodes = {"in": consumer(nats_url, stream, subject), "cap": {"type": "capture"}}
    settings = {**RETRY, "checkpoint": "100ms"}
    text = {"version": 1, "settings": settings, "nodes": nodes}

    async def run(until_rows: int, skipped: int = 0) -> Runtime:
        runtime = Runtime(check_text(text, path=flow))
        task = asyncio.create_task(runtime.run())
        await until(
            lambda: (
                len(captured(runtime)) >= until_rows
                and runtime.stats["in"].counters.get("redelivered_skipped", 0) >= skipped
            ),
            task,
        )
        runtime.stop()
        await task
        return runtime

    assert len(captured(asyncio.run(run(10)))) == 10

    async def from_the_start(js: Any) -> None:
        config = (await js.consumer_info(stream, "test")).config
        await js.delete_consumer(stream, "test")
        await js.add_consumer(stream, config)  # deliver: all, from sequence 1 again

    sync(from_the_start, nats_url)
    publish(nats_url, stream, subject, [rows(3, start=10)])
    again = asyncio.run(run(3, skipped=2))
    assert sorted(captured(again)["seq"]) == [10, 11, 12]  # only the new one
    assert again.stats["in"].counters["redelivered_skipped"] == 2


def test_a_poison_payload_goes_to_error_and_is_acknowledged(nats_url: str, names: Names) -> None:
    stream, subject = names()
    publish(nats_url, stream, subject, [rows(2)])
    sync(lambda js: js.publish(subject, b"\xff\xff\xff\xff not arrow", headers=None), nats_url)
    publish(nats_url, stream, subject, [rows(2, start=2)])
    nodes = {
        "in": {**consumer(nats_url, stream, subject), "wires": {"out": ["cap"], "error": ["bad"]}},
        "cap": {"type": "capture"},
        "bad": {"type": "capture"},
    }
    runtime = consume(nodes, 4)
    bad = captured(runtime, "bad")
    assert list(bad["stream_seq"]) == [2] and "not an Arrow IPC stream" in bad["error"][0]
    assert runtime.stats["in"].errors == 1
    info = sync(lambda js: js.consumer_info(stream, "test"), nats_url)
    assert info.num_ack_pending == 0 and info.num_redelivered == 0


AUTH = "authorization { user: alice, password: 's3cret-pw' }"


def _publish_error(url: str, stream: str, subject: str, **auth: Any) -> str:
    out = {"type": "nats_out", "servers": url, "stream": stream, "subject": subject, **auth}
    return _refused({"src": {"type": "frames", "frames": [rows(1)], "wires": ["out"]}, "out": out})


def test_wrong_credentials_fail_with_the_seeds_message(
    private: Callable[[str], PrivateServer], names: Names
) -> None:
    server = private(AUTH)
    stream, subject = names()
    error = _publish_error(server.url, stream, subject, user="alice", password="wrong-pw")
    assert error == (
        f"ConnectionError: Failed to connect to NATS server {server.url}: "
        "authorization violation (check user/password, token, nkey or creds)"
    )
    done = publish(server.url, stream, subject, [rows(3)], user="alice", password="s3cret-pw")
    assert done.stats("out")["counters"]["published"] == 1


def test_token_auth(private: Callable[[str], PrivateServer], names: Names) -> None:
    server = private("authorization { token: 't0ken-7f3a' }")
    stream, subject = names()
    assert "authorization violation" in _publish_error(server.url, stream, subject, token="nope")
    done = publish(server.url, stream, subject, [rows(3)], token="t0ken-7f3a")
    assert done.stats("out")["counters"]["published"] == 1


def test_servers_down_are_named_and_the_next_server_serves(
    private: Callable[[str], PrivateServer], names: Names
) -> None:
    stream, subject = names()
    down1, down2 = f"nats://127.0.0.1:{free_port()}", f"nats://127.0.0.1:{free_port()}"
    assert _publish_error(down1, stream, subject) == (
        f"ConnectionError: Failed to connect to NATS server {down1}: connection refused"
    )
    assert _publish_error([down1, down2], stream, subject) == (  # type: ignore[arg-type]
        f"ConnectionError: Failed to connect to NATS servers {down1}: connection refused; "
        f"{down2}: connection refused"
    )
    server = private("")
    done = publish([down1, server.url], stream, subject, [rows(3)])  # type: ignore[arg-type]
    assert done.stats("out")["counters"]["published"] == 1


def test_tls_with_a_private_ca(
    private: Callable[[str], PrivateServer], names: Names, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    server = private(f"tls {{ cert_file: '{cert}', key_file: '{key}' }}")
    url = server.url.replace("nats://", "tls://")
    stream, subject = names()
    error = _publish_error(url, stream, subject)  # the machine's CAs do not know this one
    assert error.startswith(f"ConnectionError: Failed to connect to NATS server {url}: TLS: ")
    done = publish(url, stream, subject, [rows(3)], ca_file=str(cert))
    assert done.stats("out")["counters"]["published"] == 1
    nodes = {"in": consumer(url, stream, subject, ca_file=str(cert)), "cap": {"type": "capture"}}
    assert len(captured(consume(nodes, 3))) == 3


def test_counter_into_a_partitioned_stream_and_back(nats_url: str, names: Names) -> None:
    """Numbered rows through 8 partitions: every row arrives once, in order per partition."""
    stream, subject = names()
    nodes = {
        "src": {"type": "counter", "batches": 50, "rows": 20, "wires": ["out"]},
        "out": {
            "type": "nats_out",
            "servers": nats_url,
            "stream": stream,
            "subject": subject,
            "partition_by": "seq",
            "partitions": 8,
        },
    }
    run_flow(nodes, types={"counter": Counter})
    runtime = consume({"in": consumer(nats_url, stream, subject), "cap": {"type": "capture"}}, 1000)
    got = captured(runtime)
    assert sorted(got["seq"]) == list(range(1000))
    for batch in runtime.node("cap").batches:  # type: ignore[attr-defined]
        assert batch.frame["seq"].is_monotonic_increasing


def test_a_consumer_started_before_its_stream_waits_for_it(nats_url: str, names: Names) -> None:
    stream, subject = names()
    nodes = {"in": consumer(nats_url, stream, subject), "cap": {"type": "capture"}}
    flow = {"version": 1, "settings": RETRY, "nodes": nodes}

    async def main() -> tuple[str, int]:
        runtime = Runtime(check_text(flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["in"].state == "retrying", task, what="retrying")
        error = runtime.stats["in"].last_error
        await asyncio.to_thread(publish, nats_url, stream, subject, [rows(3)])
        await until(lambda: len(captured(runtime)) == 3, task, what="the rows")
        runtime.stop()
        await task
        return error, len(captured(runtime))

    error, got = asyncio.run(main())
    assert error == (
        f"LookupError: stream {stream} not found on NATS server {nats_url}: it appears when its "
        "producer (nats_out) first starts"
    )
    assert got == 3


def test_unacknowledged_deliveries_come_again_at_once_even_on_an_interest_stream(
    nats_url: str, names: Names, tmp_path: Path
) -> None:
    """Messages another run fetched and never acknowledged (a crash) are delivered again right
    away and in order, not after ack_wait; on an interest stream the consumer is recreated
    without the server dropping them meanwhile."""
    stream, subject = names()
    publish(nats_url, stream, subject, [], retention="interest")  # the stream, empty
    flow = tmp_path / "in.yaml"
    nodes = {"in": consumer(nats_url, stream, subject), "cap": {"type": "capture"}}
    text = {"version": 1, "settings": {**RETRY, "checkpoint": "100ms"}, "nodes": nodes}

    async def run(until_rows: int) -> Runtime:
        runtime = Runtime(check_text(text, path=flow))
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(captured(runtime)) >= until_rows, task)
        runtime.stop()
        await task
        return runtime

    async def publish_first_two(js: Any) -> None:  # the consumer exists: interest
        for i in range(2):
            await js.publish(subject, encode_rows(rows(1, start=i)))

    runtime = Runtime(check_text(text, path=flow))

    async def first() -> None:
        task = asyncio.create_task(runtime.run())
        await until(lambda: runtime.stats["in"].state == "ok", task)
        await asyncio.to_thread(sync, publish_first_two, nats_url)
        await until(lambda: len(captured(runtime)) >= 2, task)
        runtime.stop()
        await task

    asyncio.run(first())

    async def crashed_run(js: Any) -> int:
        for i in range(2, 5):
            await js.publish(subject, encode_rows(rows(1, start=i)))
        sub = await js.pull_subscribe_bind("test", stream)
        await sub.fetch(3, timeout=2)  # delivered, never acknowledged
        return int((await js.consumer_info(stream, "test")).num_ack_pending)

    assert sync(crashed_run, nats_url) == 3
    again = asyncio.run(run(3))  # ack_wait is 30 s: within it only the recreation delivers
    assert list(captured(again)["seq"]) == [2, 3, 4]
    assert sync(lambda js: js.stream_info(stream), nats_url).config.retention == "interest"


def encode_rows(batch: list[dict[str, Any]]) -> bytes:
    from flowengine.nodes.nats.codec import encode

    frame = pd.DataFrame(batch).assign(timestamp=lambda f: pd.to_datetime(f["timestamp"], utc=True))
    return encode(frame, "arrow")


def test_a_stream_created_anew_is_read_from_its_start(
    nats_url: str, names: Names, tmp_path: Path
) -> None:
    """The state holds sequence 3 of a stream that was then deleted and created again: its
    new messages (sequences 1, 2) are read, not taken for repeats."""
    stream, subject = names()
    publish(nats_url, stream, subject, [rows(1, start=i) for i in range(3)])
    nodes = {"in": consumer(nats_url, stream, subject), "cap": {"type": "capture"}}
    text = {"version": 1, "settings": {**RETRY, "checkpoint": "100ms"}, "nodes": nodes}

    async def run(until_rows: int) -> Runtime:
        runtime = Runtime(check_text(text, path=tmp_path / "in.yaml"))
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(captured(runtime)) >= until_rows, task)
        runtime.stop()
        await task
        return runtime

    assert len(captured(asyncio.run(run(3)))) == 3
    sync(lambda js: js.delete_stream(stream), nats_url)
    publish(nats_url, stream, subject, [rows(1, start=10), rows(1, start=11)])
    again = asyncio.run(run(2))
    assert list(captured(again)["seq"]) == [10, 11]
    assert again.node("in").positions == {subject: 2}  # type: ignore[attr-defined]
