"""NATS in: durable pull consumers of a JetStream stream (one per partition), batches decoded
from Arrow IPC or JSON rows, messages acknowledged once the flow has them safe: when a saved
checkpoint covers them (``Source.committed``), or without checkpoints once on the wires."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any, Literal

import pandas as pd
from pydantic import field_validator, model_validator

from flowengine.logs import RateLimiter
from flowengine.node import NodeConfig, Source, option
from flowengine.nodes.nats.acks import Held, ack_all
from flowengine.nodes.nats.client import NatsLink
from flowengine.nodes.nats.codec import PayloadError, decode_piece, join
from flowengine.nodes.nats.config import (
    NatsConnection,
    NatsSubject,
    check_name,
    parse_worker,
    seconds,
)
from flowengine.nodes.nats.consumer import Feed, Lost, Settings
from flowengine.nodes.nats.kvstore import check_bucket
from flowengine.nodes.nats.partition import subject_of
from flowengine.nodes.nats.stream import stream_partitions
from flowengine.nodes.nats.workers import NatsPartitioning
from flowengine.types import Batch, Result

Queued = tuple[Feed, list[Any]] | Lost


class NatsInConfig(NodeConfig, NatsConnection, NatsSubject):
    durable: str = option(
        description="Name of the durable consumer (partitioned streams: one per partition, "
        "named `<durable>-<partition>`). Flows that share a name share the messages.",
        examples=["analytics"],
    )
    deliver: Literal["all", "new"] = option(
        "all",
        description="Where a new consumer starts: `all` (the oldest message kept) or `new` "
        "(what is published from now on). An existing consumer goes on where it was.",
    )
    partitions: list[int] | None = option(
        None,
        description="Consume only these partitions of a partitioned stream (default: all).",
        examples=[[0, 1, 2, 3]],
    )
    worker: str | None = option(
        None,
        description="`I/N`: worker I of N consumes the partitions p with p % N == I.",
        examples=["0/2"],
    )
    fetch_batch: int = option(
        100, ge=1, le=10_000, description="Messages (batches) fetched per request."
    )
    fetch_timeout: float = option(
        1.0, gt=0, advanced=True, description="Seconds one fetch waits for a message."
    )
    ack_wait: float = option(
        30.0,
        description="A message not acknowledged within this time is delivered again (`30s`); "
        "longer than a batch takes through the flow.",
    )
    max_deliver: int = option(
        -1, ge=-1, description="Deliveries of one message at most (-1: no limit, no loss)."
    )
    max_ack_pending: int = option(
        1000,
        ge=1,
        description="Messages delivered and not yet acknowledged at most, per consumer; "
        "the server stops delivering beyond it (backpressure). With checkpoints a message "
        "waits for the next one: keep this above the messages per partition per interval.",
    )
    state_bucket: str = option(
        "flowengine_state",
        advanced=True,
        description="KV bucket where `flowengine run --worker I/N` keeps each partition's "
        "checkpoint, so any host can take it over (created when missing; for HA create it "
        "beforehand with `nats kv add --replicas 3`).",
    )

    @field_validator("durable")
    @classmethod
    def _durable(cls, value: str) -> str:
        return check_name(value, "consumer")

    @field_validator("state_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        return check_bucket(value)

    @field_validator("ack_wait", mode="before")
    @classmethod
    def _ack_wait(cls, value: Any) -> float:
        return seconds(value)

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or min(value) < 0 or len(set(value)) < len(value)):
            raise ValueError("list distinct partition numbers from 0 (or leave it out: all)")
        return value

    @field_validator("worker")
    @classmethod
    def _worker(cls, value: str | None) -> str | None:
        if value is not None:
            parse_worker(value)
        return value

    @model_validator(mode="after")
    def _one_choice(self) -> NatsInConfig:
        if self.partitions is not None and self.worker is not None:
            raise ValueError("give either partitions or worker, not both")
        if self.max_deliver == 0:
            raise ValueError("max_deliver: -1 (no limit) or at least 1")
        return self

    def chosen(self, count: int | None) -> list[int | None]:
        """The partitions to consume of a stream with ``count`` (None: not partitioned)."""
        if count is None:
            if self.partitions is not None or self.worker is not None:
                raise ValueError(
                    f"stream {self.stream} is not partitioned: leave out partitions and worker"
                )
            return [None]
        if self.partitions is not None:
            if beyond := [p for p in self.partitions if p >= count]:
                raise ValueError(f"stream {self.stream} has partitions 0-{count - 1}, not {beyond}")
            return list(sorted(self.partitions))
        if self.worker is not None:
            index, workers = parse_worker(self.worker)
            if workers > count:
                raise ValueError(
                    f"worker {self.worker}: {workers} workers for {count} partitions of stream "
                    f"{self.stream} leave some with none"
                )
            return [p for p in range(count) if p % workers == index]
        return list(range(count))


class NatsIn(Source[NatsInConfig]):
    """Consume a JetStream stream through durable pull consumers with explicit acks and emit
    the batches `nats_out` published (or JSON rows from other producers), one batch per
    partition and fetch, `topic` = the subject. Unreadable payloads go to `error`.

    The state keeps the last stream sequence applied per subject: a message delivered again
    that it holds is skipped, and a restart (on any host: `--worker`) goes on right after it,
    so no ingest journal is needed (``replayable``). A message is acknowledged once the flow
    has it safe: when a saved checkpoint's state covers it, or without checkpoints once it is
    on its wires.
    """

    icon = "hub"
    requires = (("nats", "nats"),)
    io = True  # replaced by a feeder/capture in `flowengine test`
    replayable = True  # the stream keeps what the state does not cover yet
    state_attrs = ("positions",)
    link: NatsLink | None = None
    limiter: RateLimiter

    def __init__(self, config: NatsInConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        #: The last stream sequence applied (sent on) per subject: the node's state.
        self.positions: dict[str, int] = {}
        #: Messages taken and not acknowledged, until the flow has them safe.
        self.held = Held()
        self.feeds: list[Feed] = []
        self._queue: asyncio.Queue[Queued] | None = None
        self._last_seq = 0
        self.limiter = RateLimiter(5.0)

    @classmethod
    def partitioning(cls, config: Any) -> NatsPartitioning:
        return NatsPartitioning(config)

    def restore(self, state: Any) -> None:
        super().restore(state)
        self.held.covered(self.positions)  # a saved checkpoint's: safe for good

    async def start(self) -> None:
        cfg = self.config
        self.link = link = NatsLink(cfg)
        await link.connect()
        try:
            count, retention, self._last_seq = await stream_partitions(link, cfg.stream)
            chosen = cfg.chosen(count)
        except Exception:
            await link.close()
            raise
        settings = Settings(
            cfg.stream,
            retention,
            cfg.deliver,
            cfg.ack_wait,
            cfg.max_deliver,
            cfg.max_ack_pending,
            cfg.fetch_batch,
            cfg.fetch_timeout,
        )
        self.feeds = [
            Feed(link, settings, cfg.durable if p is None else f"{cfg.durable}-{p}", subject)
            for p in chosen
            for subject in [subject_of(cfg.subject, p)]
        ]

    async def run(self) -> None:
        """Bind the consumers after the restored state, then emit what they fetch; a lost
        connection raises, so the runtime connects again (and binds again) with backoff."""
        self.held.msgs = []  # a lost connection's: the consumers are bound again after the state
        self._queue = queue = asyncio.Queue[Queued](maxsize=len(self.feeds))
        for feed in self.feeds:
            await feed.bind(self._after(feed.subject), self.ctx.log)
            self._lag(feed, feed.pending)
        for feed in self.feeds:
            feed.start(queue)
        self._show()
        while True:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            lost = next((i for i in items if isinstance(i, Lost)), None)
            gaps: list[str] = []
            result = self._collect([i for i in items if not isinstance(i, Lost)], gaps)
            if result:
                try:
                    await self.ctx.send(result)
                except asyncio.CancelledError:  # a stop cut the send short: unacknowledged,
                    self.held.forget_unsafe()
                    raise  # they come again; none is lost
            await self._ack_safe()  # repeats the state holds, or all (no checkpoints)
            if lost is not None:
                raise ConnectionError(str(lost))
            if gaps:
                self.ctx.count("delivery_gaps")
                raise ConnectionError(
                    f"a delivery of consumer {gaps[0]} went astray: binding again to "
                    "receive it in order"
                )

    def _after(self, subject: str) -> int | None:
        """The last sequence the state holds for ``subject``; None (start over) when the
        stream has not got that far: it was deleted and created again."""
        after = self.positions.get(subject)
        if after is not None and after > self._last_seq:
            self.ctx.log.warning(
                "stream %s ends at sequence %d, before the %d the state holds for %s: it was "
                "created anew, so the state's position is dropped",
                self.config.stream,
                self._last_seq,
                after,
                subject,
            )
            del self.positions[subject]
            return None
        return after

    def _show(self) -> None:
        """ "consuming p0, p2 of PLANT at nats://...; lag 12": which partitions this node owns
        (the editor and the live table show it) and how far behind they are."""
        cfg = self.config
        subjects = [f.subject for f in self.feeds]
        parts = [s[len(cfg.subject) :].lstrip(".") for s in subjects]
        if len(subjects) == 1 and not parts[0]:
            text = subjects[0]
        else:
            text = f"{', '.join(f'p{p}' for p in parts)} of {cfg.stream}"
        assert self.link is not None
        lag = self.ctx.stats.counters.get("lag")
        shown = f"; lag {lag}" if lag is not None else ""
        self.ctx.status(f"consuming {text} at {self.link.url}{shown}")

    def _collect(
        self, items: list[tuple[Feed, list[Any]]], gaps: list[str] | None = None
    ) -> dict[str, Any] | None:
        """Decode fetched messages into one batch per subject (and the unreadable ones into
        one error batch); move the positions past them; hold them for ``acknowledge``. A
        consumer whose deliveries have a gap is taken up to it and named in ``gaps``."""
        out: list[Batch] = []
        bad: list[dict[str, Any]] = []
        for feed, fetched in items:
            msgs, gap = feed.in_order(fetched)
            if gap and gaps is not None:
                gaps.append(feed.name)
            if not msgs:
                continue
            last = self.positions.get(feed.subject, 0)
            pieces = []
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                self.held.take(feed.subject, seq, msg)
                if seq <= last:  # delivered again, and already applied: skip
                    self.ctx.count("redelivered_skipped")
                    continue
                last = seq
                try:
                    pieces.append(decode_piece(msg.data, msg.headers))
                except PayloadError as exc:
                    bad.append(_bad_row(msg, seq, str(exc), self.ctx.clock.now()))
            self.positions[feed.subject] = last
            self._lag(feed, msgs[-1].metadata.num_pending)
            frame = join(pieces)
            if frame is not None:
                out.append(Batch(frame, topic=feed.subject, origin=self.ctx.node_id))
        result: dict[str, Any] = {}
        if out:
            result["out"] = out
        if bad:
            result["error"] = self._errors(bad)
        return result or None

    def _lag(self, feed: Feed, pending: int) -> None:
        """Messages still waiting on this consumer, per partition (``lag_p<p>``) and in all."""
        counters = self.ctx.stats.counters
        suffix = feed.subject[len(self.config.subject) :].lstrip(".")
        before = counters.get("lag")
        counters[f"lag_p{suffix}" if suffix else "lag"] = pending
        if suffix:
            counters["lag"] = sum(v for k, v in counters.items() if k.startswith("lag_p"))
        if counters["lag"] != before and self.link is not None:
            self._show()

    def _errors(self, bad: list[dict[str, Any]]) -> Batch:
        """Unreadable payloads as one error batch, counted and logged (rate-limited)."""
        frame = pd.DataFrame(bad)
        self.ctx.error(f"PayloadError: {bad[-1]['error']}", len(bad))
        self.ctx.count("decode_errors", len(bad))
        for row in bad:
            self.limiter.log(self.ctx.log, logging.WARNING, partial(_bad_text, row))
        return Batch(frame, origin=self.ctx.node_id, error="Could not decode NATS payload")

    async def acknowledge(self) -> None:
        """Without checkpoints: what was sent is on its wires now, so all taken is safe."""
        self.held.covered(self.positions)
        await self._ack_safe()

    async def committed(self, state: Any) -> None:
        """A saved checkpoint holds ``state``: acknowledge every message up to its positions
        (after ``close``, for a clean stop's last checkpoint, over a connection of its own)."""
        positions = state.get("positions") if isinstance(state, dict) else None
        self.held.covered(positions or {})
        await self._ack_safe()

    async def _ack_safe(self) -> None:
        """Acknowledge the taken messages the flow has safe (see ``acks.py``)."""
        if ready := self.held.ready():
            failed = await ack_all(ready, self.link, self.config)
            self.ctx.count("acked", len(ready) - failed)
            if failed:
                self.ctx.count("ack_failures", failed)

    async def flush(self) -> Result:
        """Hand on what was fetched already; its acknowledgements go out before ``close``."""
        for feed in self.feeds:
            await feed.stop()
        items: list[tuple[Feed, list[Any]]] = []
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, Lost):
                items.append(item)
        result = self._collect(items, [])
        if not result:
            await self._ack_safe()
        return result

    async def close(self) -> None:
        for feed in self.feeds:
            await feed.stop()
        if self.link is not None:
            await self.link.close()


def _bad_text(row: dict[str, Any]) -> str:
    return (
        f"unreadable payload on {row['subject']} (stream sequence {row['stream_seq']}): "
        f"{row['error']}"
    )


def _bad_row(msg: Any, seq: int, error: str, now: pd.Timestamp) -> dict[str, Any]:
    data = bytes(msg.data[:200])
    return {
        "timestamp": now,
        "subject": msg.subject,
        "stream_seq": seq,
        "payload": data.decode("utf-8", "replace"),
        "error": error,
    }
