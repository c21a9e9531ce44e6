"""MQTT in: subscribe to topic filters and emit batches of readings (count- or time-bounded)."""

from __future__ import annotations

import time
from collections import deque

import pandas as pd

from flowengine.failover import Endpoints
from flowengine.lists import Lists
from flowengine.logs import RateLimiter
from flowengine.node import NodeConfig, Source, option
from flowengine.nodes.mqtt.client import MqttClient
from flowengine.nodes.mqtt.config import MqttConnection, MqttParsing
from flowengine.nodes.mqtt.handoff import Item
from flowengine.nodes.mqtt.link import endpoints_of
from flowengine.nodes.mqtt.parse import Parser, log_bad
from flowengine.types import Batch

#: Unconfirmed messages a journaled source holds at most before it journals what it has and
#: confirms them: below Mosquitto's default max_inflight_messages (20), which would stall it.
ACK_WINDOW = 10
#: Seconds between looks whether a busy receiver has taken the last batch.
HOLD_POLL = 0.001
#: QoS 1/2 confirmed on receipt: a read bringing this many messages means the broker's window
#: of unconfirmed messages (Mosquitto's max_inflight_messages, 20) was probably full and more
#: wait there. They come a round trip after our confirmations, but the broker sends at most
#: one window per event-loop turn, and a flow with a slow node makes turns long (a `python`
#: node with pandas: milliseconds), which caps QoS 1 at ~20 messages a turn.
WINDOW_READ = 16
#: How long a batch then waits for the rest (seconds): the reads of that time become one
#: batch, so the next nodes pay their per-batch cost once for several windows.
GATHER = 0.002


class MqttInConfig(NodeConfig, MqttConnection, MqttParsing):
    batch_size: int = option(
        1000, ge=1, description="Emit a batch once this many rows are buffered."
    )
    batch_interval: float = option(
        0.5, gt=0, description="Emit what is buffered at most this many seconds after it arrived."
    )
    linger: float = option(
        0.0,
        ge=0,
        description="Seconds to wait for more messages before sending a partial batch once no "
        "more are waiting: 0 sends at once (lowest latency); batches still grow under load, "
        "up to `batch_size`, from what arrives while the flow is busy.",
    )
    buffer: int = option(
        10_000,
        ge=1,
        advanced=True,
        description="Messages held between the connection and the flow; when full, reading "
        "from the broker pauses (backpressure) instead of dropping.",
    )


class MqttIn(Source[MqttInConfig]):
    """Subscribe to MQTT topics (wildcards, QoS 0-2, TLS, MQTT 3.1.1/5) and emit DataFrames of
    readings in the long format plus a `topic` column. Unparseable payloads go to `error`.

    QoS 1/2 messages are acknowledged to the broker only once the flow has them safe: in the
    ingest journal when the flow checkpoints, else once they are on their wires. So a crash
    before that makes the broker send them again (with a persistent session, also those
    published meanwhile) instead of losing them.
    """

    icon = "cell_tower"
    io = True  # replaced by a feeder/capture in `flowengine test`
    client: MqttClient | None = None
    #: The brokers, kept across reconnects (which one was lost); shows the one that serves.
    endpoints: Endpoints | None = None
    parser: Parser
    limiter: RateLimiter
    #: Per message taken, in order: the rows taken so far up to and including it.
    _marks: deque[int]
    _taken = 0
    _sent = 0
    #: While a batch gathers what the broker's window holds back (see ``WINDOW_READ``): until.
    _gather: float | None = None

    async def start(self) -> None:
        cfg = self.config
        self._marks, self._taken, self._sent = deque(), 0, 0
        # confirmations wait for the journal only when there is one; else the client confirms
        # on receipt (holding them longer would stall: brokers allow ~20 unconfirmed messages)
        if self.endpoints is None:
            self.endpoints = endpoints_of(cfg, self.ctx.log, self.ctx.count, self._show)
        manual_ack = self.ctx.journaled and cfg.qos > 0
        self.client = client = MqttClient(cfg, manual_ack=manual_ack, endpoints=self.endpoints)
        self.parser = Parser(cfg, self.ctx.node_id)
        self.limiter = RateLimiter(5.0)
        await client.connect([(t, cfg.qos) for t in cfg.filters()], cfg.buffer)

    async def run(self) -> None:
        """Collect until the batch is full or old enough, then send; a lost connection sends
        what is buffered and raises, so the runtime reconnects."""
        cfg, parser = self.config, self.parser
        assert self.client is not None  # the runtime calls start first
        handoff = self.client.handoff
        assert handoff is not None
        self._show()
        first: float | None = None
        gathers = cfg.qos > 0 and not self.client.manual_ack
        self._gather = None
        while True:
            items = await handoff.wait(self._wait(first))
            lost = handoff.lost  # what arrived before the loss goes on first
            if items:
                self._take(items)
                if gathers and len(items) >= WINDOW_READ and self._gather is None:
                    self._gather = time.monotonic() + GATHER
            pending = parser.pending
            if first is None and pending:
                first = time.monotonic()
            if parser.bad:
                await self._send_bad()
            if self.client.manual_ack and len(self._marks) >= ACK_WINDOW and pending:
                await self._send(parser.take())  # journal now, so the acks go out
                first, pending = None, 0
            while pending >= cfg.batch_size:  # full batches; a remainder waits
                await self._send(parser.take(cfg.batch_size))
                pending -= cfg.batch_size
                first = time.monotonic() if pending else None
            if first is None:
                self._gather = None  # nothing held: the next batch gathers anew
            now = time.monotonic()
            age = 0.0 if first is None else now - first
            # nothing more is waiting (nor held back by the broker): no reason to hold the rows
            idle = not handoff.pending and (self._gather is None or now >= self._gather)
            if first is not None and (
                lost
                or age >= cfg.batch_interval
                or (idle and age >= cfg.linger and not self._downstream_busy())
            ):
                await self._send(parser.take())
                first = self._gather = None
            if lost:
                raise ConnectionError(lost.reason)

    def _downstream_busy(self) -> bool:
        """True while a batch sent before still waits for its receiver: rows held meanwhile
        join the next batch instead of queueing behind it as another small one
        (``Context.backlog``)."""
        return self.ctx.backlog("out") > 0

    def _wait(self, first: float | None) -> float | None:
        """How long to wait for more messages: forever with nothing held; else until the
        batch is due (``linger``; while the receiver is busy, a look every millisecond),
        at most ``batch_interval`` after its first row."""
        if first is None:
            return None
        cfg, now = self.config, time.monotonic()
        ready = max(first + cfg.linger, self._gather or 0.0)
        if self._downstream_busy():
            ready = max(ready, now + HOLD_POLL)
        return max(0.0, min(ready, first + cfg.batch_interval) - now)

    def _show(self) -> None:
        """Status: the topic filters, and with several brokers the one that serves."""
        text = f"subscribed to {', '.join(self.config.filters())}"
        if self.endpoints is not None and self.endpoints.several:
            text += f" at {self.endpoints.label()}"
        self.ctx.status(text)

    def _take(self, items: list[Item]) -> None:
        """Parse the messages of one read; with manual acks, remember per message how many
        rows were taken up to and including it (it is confirmed once they are all sent)."""
        counts = self.parser.add_many(items)
        if not self.client or not self.client.manual_ack:
            return
        if counts is None:  # one row each
            self._marks.extend(range(self._taken + 1, self._taken + len(items) + 1))
            self._taken += len(items)
            return
        for count in counts:
            self._taken += count
            self._marks.append(self._taken)

    async def _send(self, rows: pd.DataFrame | Lists | None) -> None:
        if rows is not None:
            self._sent += len(rows)
            await self.ctx.send(self._batch(rows))

    def _batch(self, rows: pd.DataFrame | Lists) -> Batch:
        if isinstance(rows, Lists):
            return Batch(None, origin=self.ctx.node_id, lists=rows)
        return Batch(rows, origin=self.ctx.node_id)

    async def acknowledge(self) -> None:
        """Confirm to the broker every message whose rows have all been sent (the runtime
        calls this once they are safe: journaled, or on their wires)."""
        marks, sent, n = self._marks, self._sent, 0
        while marks and marks[0] <= sent:
            marks.popleft()
            n += 1
        if n and self.client is not None:
            self.client.ack(n)

    async def _send_bad(self) -> None:
        """Unparseable payloads to the error port, each counted as an error of this node (the
        run summary and ``flowengine_node_errors_total``) and as a ``parse_errors`` counter."""
        bad = self.parser.take_bad()
        if bad is None:
            return
        self.ctx.error(f"PayloadError: {bad['error'].iloc[-1]}", len(bad))
        self.ctx.count("parse_errors", len(bad))
        log_bad(self.limiter, self.ctx.log, bad)
        await self.ctx.send(
            Batch(bad, origin=self.ctx.node_id, error="Could not parse JSON payload"), "error"
        )

    async def flush(self) -> Batch | None:
        """Hand on everything already received; the connection stays open until ``close``, so
        its acknowledgements still go out. What arrives after this is not acknowledged: the
        broker sends it again next time (a persistent session), nothing is lost."""
        if self.client is None:
            return None
        items = self.client.handoff.take() if self.client.handoff else []
        if items:
            self._take(items)
        await self._send_bad()
        rows = self.parser.take()
        if rows is None:
            return None
        self._sent += len(rows)
        return self._batch(rows)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.disconnect()
