"""OPC UA subscriptions at scale, against real asyncua servers: a server queue that overflows
is counted and warned about, several publish requests are in flight, and values are emitted as
soon as they arrive (batches form only while downstream is busy), shown by order, not time."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import pandas as pd
import pytest

from flowengine.node import NodeConfig, Sink
from flowengine.runtime import Runtime
from flowengine.testing import check_text
from flowengine.types import Batch
from tests.helpers.peers import free_port, until
from tests.nodes.opcua.test_opcua import UaServer

asyncua = pytest.importorskip("asyncua")
ua = asyncua.ua

BURST = "ns=2;i=1010"
OVERFLOW_BITS = 0x480  # InfoType DataValue + Overflow (OPC UA Part 4, 7.34.1)


@pytest.fixture
def server() -> Iterator[UaServer]:
    srv = UaServer(free_port()).start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def marking_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncua's server discards the oldest value of a full item queue without the Overflow
    bit the spec asks for (Part 4, 5.12.1.5): this sets it on the value that then comes first,
    as node-opcua and other servers do. The client sees it on the wire like any status."""
    from asyncua.server.internal_subscription import InternalSubscription

    async def enqueue(
        self: Any, mid: int, eventdata: Any, size: int, queue: dict[int, list[Any]]
    ) -> None:
        items = queue.setdefault(mid, [])
        if size and len(items) >= size:
            items.pop(0)
            first = items[0] if items else eventdata
            code = ua.StatusCode(first.Value.StatusCode.value | OVERFLOW_BITS)
            first.Value = dataclasses.replace(first.Value, StatusCode=code)
        items.append(eventdata)
        await self._trigger_publish()

    monkeypatch.setattr(InternalSubscription, "_enqueue_event", enqueue)


def flow(server: UaServer, sink: str, **cfg: Any) -> dict[str, Any]:
    return {
        "src": {
            "type": "opcua_in",
            "server_url": server.url,
            "mode": "subscription",
            "nodes": {BURST: "burst"},
            "sampling_interval": 0.05,
            **cfg,
            "wires": ["cap"],
        },
        "cap": {"type": sink, "queue_size": 1},
    }


def burst_values(runtime: Runtime) -> list[float]:
    frames = [b.frame for b in runtime.node("cap").batches]  # type: ignore[attr-defined]
    if not frames:
        return []
    frame = pd.concat(frames)
    return frame.loc[frame["sensor"] == "burst", "value"].tolist()


def _subscriptions(server: UaServer) -> list[Any]:
    return list(server.server.iserver.subscription_service.subscriptions.values())


async def _write_paused(server: UaServer, values: list[float]) -> None:
    """On the server's loop: publishing off, ``values`` written one after the other, on."""
    subs = _subscriptions(server)
    for sub in subs:
        await sub.set_publishing_mode(False)
    node = server.server.get_node(BURST)
    for value in values:
        await node.write_value(value, ua.VariantType.Double)
    for sub in subs:
        await sub.set_publishing_mode(True)


def _burst(server: UaServer, count: int) -> Runtime:
    """A flow subscribed to the burst node; ``count`` values written while the server does
    not publish; the flow stopped once the last one arrived."""

    async def main() -> Runtime:
        runtime = Runtime(check_text(flow(server, "capture")))
        task = asyncio.create_task(runtime.run())
        await until(lambda: burst_values(runtime) == [0.0], task)
        values = [float(i) for i in range(1, count + 1)]
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(_write_paused(server, values), server.loop)
        )
        await until(lambda: burst_values(runtime)[-1:] == [float(count)], task)
        runtime.stop()
        await task
        return runtime

    return asyncio.run(main())


def test_default_item_queue_keeps_values_the_client_has_not_fetched(
    server: UaServer, marking_overflow: None
) -> None:
    """Ten values while the server does not publish fit the default queue (10 per item):
    nothing lost, nothing marked."""
    runtime = _burst(server, 10)
    assert burst_values(runtime) == [float(i) for i in range(11)]
    assert "overflow" not in runtime.stats["src"].counters


def test_server_queue_overflow_is_counted_and_warned(
    server: UaServer, marking_overflow: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty: the server keeps the last ten and marks the first of them (Overflow bit); the
    flow keeps the value and its order, counts it and warns once, naming node and queue."""
    runtime = _burst(server, 20)
    assert burst_values(runtime) == [0.0] + [float(i) for i in range(11, 21)]
    frame = pd.concat(b.frame for b in runtime.node("cap").batches)  # type: ignore[attr-defined]
    marked = frame.set_index("value").loc[11.0]
    assert marked["status_code"] & OVERFLOW_BITS == OVERFLOW_BITS
    assert marked["quality"] == "good"  # an info bit: the value itself is fine
    assert (frame.loc[frame["value"] != 11.0, "status_code"] & OVERFLOW_BITS == 0).all()
    stats = runtime.stats["src"]
    assert stats.counters["overflow"] == 1 and stats.errors == 0
    warnings = [r for r in caplog.records if "server queue overflow" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert "node 'src'" in message and "item_queue_size=10" in message


def test_item_queue_size_reaches_the_server(server: UaServer, marking_overflow: None) -> None:
    """`item_queue_size` (a flow file's `queue_size` sizes the input wire) is the queue the
    server uses: 2 keeps the last two of ten."""
    nodes = flow(server, "capture", item_queue_size=2)

    async def main() -> Runtime:
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: burst_values(runtime) == [0.0], task)
        values = [float(i) for i in range(1, 11)]
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(_write_paused(server, values), server.loop)
        )
        await until(lambda: burst_values(runtime)[-1:] == [10.0], task)
        runtime.stop()
        await task
        return runtime

    runtime = asyncio.run(main())
    assert burst_values(runtime) == [0.0, 9.0, 10.0]
    assert runtime.stats["src"].counters["overflow"] == 1


@pytest.mark.parametrize(
    ("key", "value"), [("publish_requests", 0), ("item_queue_size", 0), ("linger", -1)]
)
def test_bad_tuning_is_a_validation_error_naming_the_field(key: str, value: Any) -> None:
    checked = check_text(
        {
            "src": {
                "type": "opcua_in",
                "server_url": "opc.tcp://127.0.0.1:4840",
                "nodes": ["ns=2;i=1"],
                key: value,
                "wires": ["cap"],
            },
            "cap": {"type": "capture"},
        }
    )
    assert not checked.ok
    assert any(key in str(p) for p in checked.problems), checked.problems


def _queued_publish_requests(server: UaServer) -> list[int]:
    async def collect() -> list[int]:
        clients = server.server.bserver.clients
        return [len(c.processor._publish_requests) for c in clients if c.processor is not None]

    result: list[int] = server.call(collect())
    return result


@pytest.mark.parametrize("requests", [1, 3])
def test_publish_requests_in_flight(server: UaServer, requests: int) -> None:
    """With nothing to publish the server holds every publish request the client sent: as
    many as `publish_requests`. Values then still arrive once each, in order."""
    nodes = flow(server, "capture", publish_requests=requests)

    async def main() -> Runtime:
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: burst_values(runtime) == [0.0], task)
        await until(
            lambda: _queued_publish_requests(server) == [requests], task, what="queued requests"
        )
        for i in range(1, 6):
            await asyncio.to_thread(server.set, BURST, float(i))
            await until(lambda: burst_values(runtime)[-1:] == [float(i)], task)  # noqa: B023
        runtime.stop()
        await task
        return runtime

    try:
        runtime = asyncio.run(main())
    finally:
        server.set(BURST, 0.0)
    assert burst_values(runtime) == [float(i) for i in range(6)]


class Gate(Sink[NodeConfig]):
    """Records each batch's values; while ``closed`` is clear it holds the batch it got."""

    opened: ClassVar[asyncio.Event]
    entered: ClassVar[int] = 0

    def __init__(self, config: NodeConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.batches: list[Batch] = []

    async def write(self, batch: Batch) -> None:
        self.batches.append(batch)
        Gate.entered += 1
        await Gate.opened.wait()


def test_values_are_emitted_on_arrival_and_batched_only_under_load(server: UaServer) -> None:
    """`batch_interval` 60 s: a value still comes out on its own at once (the next is written
    only after it arrived). While the sink holds a batch and its input wire (1 batch) is full,
    values that arrive wait in the source and come out together as the next batch."""
    nodes = flow(server, "gate", batch_interval=60.0, queue_size=100)

    async def main() -> Runtime:
        Gate.opened, Gate.entered = asyncio.Event(), 0
        Gate.opened.set()
        runtime = Runtime(check_text(nodes, types={"gate": Gate}))
        task = asyncio.create_task(runtime.run())
        await until(lambda: burst_values(runtime) == [0.0], task)
        client = runtime.node("src").client  # type: ignore[attr-defined]
        accepted = 0
        accept = client.accept

        def count(readings: list[Any]) -> None:
            nonlocal accepted
            accepted += len(readings)
            accept(readings)

        client.accept = count

        async def put(value: float) -> None:
            before = accepted
            await asyncio.to_thread(server.set, BURST, value)
            await until(lambda: accepted > before, task, what=f"value {value}")

        await put(1.0)
        await until(lambda: burst_values(runtime) == [0.0, 1.0], task)  # alone, at once
        Gate.opened.clear()
        await put(2.0)
        await until(lambda: Gate.entered == 3, task, what="the sink holds 2")
        await put(3.0)
        await until(lambda: not client.buffer, task, what="3 on the wire")
        await put(4.0)
        await until(lambda: not client.buffer, task, what="4 taken; the source waits for room")
        for value in (5.0, 6.0, 7.0):
            await put(value)
        assert len(client.buffer) == 3  # held in the source while downstream is busy
        Gate.opened.set()
        await until(lambda: burst_values(runtime)[-1:] == [7.0], task)
        runtime.stop()
        await task
        return runtime

    try:
        runtime = asyncio.run(main())
    finally:
        server.set(BURST, 0.0)
    batches = [b.frame["value"].tolist() for b in runtime.node("cap").batches]  # type: ignore[attr-defined]
    assert batches == [[0.0], [1.0], [2.0], [3.0], [4.0], [5.0, 6.0, 7.0]]


def test_a_value_the_fast_path_does_not_read_arrives_through_asyncua(server: UaServer) -> None:
    """An array value: that response is decoded by asyncua; the next one by the fast path."""

    async def main() -> Runtime:
        runtime = Runtime(check_text(flow(server, "capture")))
        task = asyncio.create_task(runtime.run())
        await until(lambda: burst_values(runtime) == [0.0], task)
        array = ua.Variant([1.0, 2.0], ua.VariantType.Double)
        await asyncio.to_thread(server.call, server.server.get_node(BURST).write_value(array))
        await until(lambda: len(burst_values(runtime)) == 2, task)
        await asyncio.to_thread(server.set, BURST, 3.0)
        await until(lambda: burst_values(runtime)[-1:] == [3.0], task)
        runtime.stop()
        await task
        return runtime

    runtime = asyncio.run(main())
    assert burst_values(runtime) == [0.0, [1.0, 2.0], 3.0]
    assert runtime.stats["src"].errors == 0


def test_subscription_deleted_on_the_server_is_made_again(
    server: UaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server drops the subscription (as when it expires) under a running flow and keeps
    the client's publish requests unanswered (asyncua's server does): no keep-alive comes in
    time, so the source reconnects and subscribes again; later values arrive."""
    from flowengine.nodes.opcua import stream

    monkeypatch.setattr(stream, "KEEPALIVE", 0.2)  # keep-alives every 0.2 s, not 5 s
    nodes = {
        "version": 1,
        "settings": {"retry": {"initial": 0.2, "max": 0.5}},
        "nodes": flow(server, "capture", timeout=2.0),
    }

    async def drop() -> None:
        service = server.server.iserver.subscription_service
        await service.delete_subscriptions(list(service.subscriptions))

    async def main() -> Runtime:
        runtime = Runtime(check_text(nodes))
        task = asyncio.create_task(runtime.run())
        await until(lambda: burst_values(runtime) == [0.0], task)
        feed = runtime.node("src").client._sub  # type: ignore[attr-defined]
        heard = {feed.heard}

        def keepalives() -> bool:  # publish responses without values (times they came)
            heard.add(feed.heard)
            return len(heard) >= 5

        await until(keepalives, task, what="keep-alives")
        assert runtime.stats["src"].retries == 0  # keep-alives, no values: not silent
        await asyncio.to_thread(server.call, drop())
        await until(lambda: runtime.stats["src"].retries >= 1, task, what="a reconnect")
        await until(lambda: runtime.stats["src"].state == "ok", task)
        await until(lambda: _subscriptions(server) != [], task)
        await asyncio.to_thread(server.set, BURST, 5.0)
        await until(lambda: burst_values(runtime)[-1:] == [5.0], task)
        runtime.stop()
        await task
        return runtime

    runtime = asyncio.run(main())
    assert burst_values(runtime)[-1] == 5.0
    assert "no publish response" in str(runtime.stats["src"].last_error)
