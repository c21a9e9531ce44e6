"""Durable pull consumers of ``nats_in``: one per subject (per partition), positioned after
what the node's state already holds, each fetching in order into one queue.

The node's state (the last applied stream sequence per subject) is the truth: a consumer that
holds unacknowledged deliveries when it is bound (messages fetched but never made safe before a
crash, or lost in flight when the server went away), or that went past messages of its subject
the state does not hold (the state came from an older checkpoint, perhaps on another host), is
recreated to deliver again from the sequence after the state's, at once and in order. Without
that, JetStream would redeliver them only after ``ack_wait``, behind newer ones, and the source
would take them for repeats; or never, once acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from flowengine.extras import require
from flowengine.nodes.nats.client import NatsLink, is_lost


@dataclass(frozen=True)
class Settings:
    """What every consumer of one node is created with."""

    stream: str
    retention: str
    deliver: str
    ack_wait: float
    max_deliver: int
    max_ack_pending: int
    fetch_batch: int
    fetch_timeout: float


class Lost(Exception):
    """A fetcher failed, mostly because its connection ended (carried through the queue to the
    source's loop, which raises it)."""


class Feed:
    """One durable consumer of one subject, and the task fetching from it."""

    def __init__(self, link: NatsLink, settings: Settings, name: str, subject: str) -> None:
        self.link = link
        self.settings = settings
        self.name = name
        self.subject = subject
        self.sub: Any = None
        #: The consumer's delivery number of the last message taken (see ``in_order``).
        self.cseq = 0
        #: Messages waiting on the consumer when it was bound (its lag then).
        self.pending = 0
        self.task: asyncio.Task[None] | None = None

    def config(self, after: int | None) -> Any:
        """The consumer's config; ``after``: deliver from the next stream sequence."""
        api = require("nats.js.api", "nats")
        s = self.settings
        policy = {"deliver_policy": api.DeliverPolicy(s.deliver)}
        if after is not None:
            policy = {
                "deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": after + 1,
            }
        return api.ConsumerConfig(
            durable_name=self.name,
            filter_subject=self.subject,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait,
            max_deliver=s.max_deliver,
            max_ack_pending=s.max_ack_pending,
            **policy,
        )

    async def bind(self, after: int | None, log: logging.LoggerAdapter[logging.Logger]) -> None:
        """Create the consumer, or take the existing one (its limits updated). One that holds
        deliveries never acknowledged, or that went past messages after ``after`` (the last
        sequence the state holds), is recreated to deliver from after ``after``, so what the
        state lacks comes again now and in order."""
        jserrors = require("nats.js.errors", "nats")
        js, guard, stream = self.link.js, self.link.guard, self.settings.stream
        try:
            info = await guard(js.consumer_info(stream, self.name))
        except jserrors.NotFoundError:
            info = None
        if info is not None and info.config.filter_subject != self.subject:
            raise ValueError(
                f"consumer {self.name} of stream {stream} reads '{info.config.filter_subject}', "
                f"not '{self.subject}': choose another durable name, or delete it "
                f"(nats consumer rm {stream} {self.name})"
            )
        if info is not None and after is not None and await self._behind(info, after):
            log.info(
                "consumer %s holds %d unacknowledged deliveries and went up to stream "
                "sequence %d; the state holds %d: delivering again from %d",
                self.name,
                info.num_ack_pending,
                _delivered(info),
                after,
                after + 1,
            )
            info = await self._recreate(after)
            self.cseq = 0
        elif info is None:
            info = await guard(js.add_consumer(stream, self.config(after)))
            self.cseq = 0
        else:  # the limits may change on a durable consumer; where it is stays
            info = await guard(js.add_consumer(stream, self._updated(info.config)))
            self.cseq = info.delivered.consumer_seq if info.delivered else 0
        self.pending = int(getattr(info, "num_pending", 0) or 0)
        self.sub = await guard(js.pull_subscribe_bind(self.name, stream))

    async def _behind(self, info: Any, after: int) -> bool:
        """True when the state (holding ``after``) lacks what the consumer delivered: it holds
        unacknowledged deliveries, or it went past ``after`` and its subject has messages
        there (a consumer moves past other subjects' messages too: those do not count)."""
        if info.num_ack_pending:
            return True
        if _delivered(info) <= after:
            return False
        jserrors = require("nats.js.errors", "nats")
        try:
            last = await self.link.guard(
                self.link.js.get_last_msg(self.settings.stream, self.subject)
            )
        except jserrors.NotFoundError:
            return False
        return int(last.seq) > after

    async def _recreate(self, after: int) -> Any:
        """Delete the consumer and create it again from ``after + 1``. On an interest stream
        a bridge consumer holds the interest meanwhile, or the server would drop the messages
        nobody else wants the moment the consumer is gone."""
        js, guard, stream = self.link.js, self.link.guard, self.settings.stream
        bridge = None
        if self.settings.retention == "interest":
            bridge = f"{self.name}-bridge"
            await guard(js.add_consumer(stream, self.config(after).evolve(durable_name=bridge)))
        await guard(js.delete_consumer(stream, self.name))
        info = await guard(js.add_consumer(stream, self.config(after)))
        if bridge is not None:
            await guard(js.delete_consumer(stream, bridge))
        return info

    def in_order(self, msgs: list[Any]) -> tuple[list[Any], bool]:
        """The messages up to a gap in the consumer's delivery numbers (a delivery that went
        astray: it would come back only after ``ack_wait``, behind newer ones), and whether
        there was one; the source then stops, and binding again delivers in order."""
        for i, msg in enumerate(msgs):
            cseq = msg.metadata.sequence.consumer
            if cseq != self.cseq + 1:
                return msgs[:i], True
            self.cseq = cseq
        return msgs, False

    def _updated(self, current: Any) -> Any:
        s = self.settings
        return current.evolve(
            ack_wait=s.ack_wait, max_deliver=s.max_deliver, max_ack_pending=s.max_ack_pending
        )

    def start(self, queue: asyncio.Queue[tuple[Feed, list[Any]] | Lost]) -> None:
        self.task = asyncio.create_task(self._fetch(queue), name=f"nats-fetch:{self.name}")

    async def _fetch(self, queue: asyncio.Queue[tuple[Feed, list[Any]] | Lost]) -> None:
        """Fetch until cancelled; each non-empty fetch goes to ``queue`` (waiting while it is
        full: backpressure); a lost connection goes there as :class:`Lost` and ends this."""
        s = self.settings
        while True:
            try:
                msgs = await self.link.guard(self.sub.fetch(s.fetch_batch, s.fetch_timeout))
            except TimeoutError:  # nats-py's and asyncio's
                if self.link.lost.is_set():
                    await queue.put(Lost(self.link.reason))
                    return
                continue  # nothing new this time
            except Exception as exc:  # the source's loop raises it, the runtime starts over
                reason = self.link.reason if is_lost(exc) and self.link.reason else ""
                await queue.put(
                    Lost(reason or f"fetch from {self.name}: {type(exc).__name__}: {exc}")
                )
                return
            if msgs:
                await queue.put((self, msgs))

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _delivered(info: Any) -> int:
    """The last stream sequence a consumer delivered."""
    return int(info.delivered.stream_seq or 0) if info.delivered else 0
