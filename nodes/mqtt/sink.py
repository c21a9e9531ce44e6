"""MQTT out: publish each row, or each batch, as JSON to a topic filled from row columns,
optionally gzip or zstd compressed (``mqtt_in`` detects and decodes those by itself)."""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import ValidationInfo, field_validator

from flowengine.compression import Codec, check_codec, check_level, compress
from flowengine.node import NodeConfig, Sink, option
from flowengine.nodes.mqtt import encode
from flowengine.nodes.mqtt.client import MqttClient
from flowengine.nodes.mqtt.config import MqttConnection
from flowengine.nodes.mqtt.link import endpoints_of
from flowengine.types import Batch

#: Unacknowledged messages by default: QoS 1, and QoS 2 (Mosquitto's max_inflight_messages).
QOS1_WINDOW, QOS2_WINDOW = 1000, 20


class MqttOutConfig(NodeConfig, MqttConnection):
    topic: str = option(
        description="Topic template; `{column}` is filled from each row.",
        examples=["alerts/{line}/{sensor}", "plant/line3/readings"],
    )
    qos: Literal[0, 1, 2] = option(1, description="Publish QoS; > 0 waits for the broker's acks.")
    retain: bool = option(False, description="Ask the broker to keep the last message per topic.")
    mode: Literal["rows", "batch"] = option(
        "rows",
        description="`rows`: one JSON object per row; `batch`: one JSON array per topic and batch.",
    )
    max_inflight: int | None = option(
        None,
        ge=1,
        le=65535,
        advanced=True,
        description="QoS 1/2 messages sent before waiting for their acknowledgements (more go "
        "as they come in; an MQTT 5 broker may ask for fewer). Default: 1000 at QoS 1, 20 at "
        "QoS 2, because Mosquitto silently drops QoS 2 messages beyond its "
        "`max_inflight_messages` (20) from MQTT 3.1.1 clients.",
    )
    confirm: Literal["window", "batch"] = option(
        "window",
        advanced=True,
        description="QoS 1/2. `window`: a batch is done once published; its acknowledgements "
        "are awaited while the next batches go out (a batch waits only when `max_inflight` "
        "messages are unacknowledged), and all of them before the node stops; a checkpoint "
        "records the unacknowledged ones, published again after a crash. `batch`: each batch "
        "waits for all its acknowledgements before the next (a round trip per batch; a sink "
        "with `buffer:` always does this, so that its disk buffer lets go of acknowledged "
        "batches only).",
    )
    ack_timeout: float = option(
        30.0, gt=0, advanced=True, description="Seconds to wait for QoS 1/2 acknowledgements."
    )
    reconnect_timeout: float = option(
        60.0,
        ge=0,
        description="When the broker is gone (a restart), wait this many seconds for the "
        "reconnection (status `retrying`) before the batch fails to the error port; 0 fails at once.",
    )
    compression: Codec = option(
        "none",
        description="Compress each payload with gzip or zstd (flowengine[zstd]). Subscribers "
        "must decompress: `mqtt_in` does by itself (`decompress: auto`), others must know. "
        "Pays off with `mode: batch`; one row's JSON is too small to gain much.",
    )
    compression_level: int | None = option(
        None, ge=1, le=22, advanced=True, description="gzip 1-9 (default 6), zstd 1-22 (3)."
    )

    @field_validator("compression")
    @classmethod
    def _codec(cls, value: Codec) -> Codec:
        check_codec(value)
        return value

    @field_validator("compression_level")
    @classmethod
    def _level(cls, value: int | None, info: ValidationInfo) -> int | None:
        return check_level(value, info.data.get("compression", "none"))

    @field_validator("topic")
    @classmethod
    def _template(cls, topic: str) -> str:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(topic) if f is not None]
        except ValueError as exc:
            raise ValueError(f"bad topic template: {exc}") from None
        if any(not f for f in fields):
            raise ValueError("topic template needs column names inside {}")
        if "+" in topic or "#" in topic:
            raise ValueError("a publish topic cannot contain the wildcards + or #")
        return topic


class MqttOut(Sink[MqttOutConfig]):
    """Publish rows or batches as JSON (timestamps as ISO 8601). QoS 1/2 messages are kept
    until the broker acknowledges them (sent again after a reconnection); with `confirm:
    window` (default) the next batch does not wait for the last one's acknowledgements, only
    for room in the `max_inflight` window; a stop waits for them all, and a checkpoint
    records those still unacknowledged (the state), so a crash loses none. With `confirm:
    batch` (and always with a `buffer:`) a batch counts as written only once the broker has
    acknowledged every message of it."""

    icon = "cell_tower"
    io = True  # replaced by a feeder/capture in `flowengine test`
    client: MqttClient | None = None

    async def start(self) -> None:
        endpoints = endpoints_of(self.config, self.ctx.log, self.ctx.count)
        # no runtime restart for sinks: the client reconnects, failing over between brokers
        self.client = MqttClient(self.config, reconnect=True, endpoints=endpoints)
        await self.client.connect()

    def _settles(self) -> bool:
        """True when each batch waits for its acknowledgements: ``confirm: batch``, or a
        store-and-forward ``buffer:`` (its counters are set before ``start``), which deletes a
        batch from disk once ``write`` returns and must not before the broker has it."""
        return self.config.confirm == "batch" or "buffered_batches" in self.ctx.stats.counters

    def _messages(self, batch: Batch) -> list[tuple[str, bytes]]:
        cfg = self.config
        texts = None
        if batch.lists is not None:  # no frame needed, unless a column needs pandas' reading
            texts = encode.texts_of_lists(batch.lists, cfg.topic, cfg.mode)
        if texts is None:
            texts = encode.texts(batch.frame, cfg.topic, cfg.mode)
        if cfg.compression == "none":
            return texts
        level = cfg.compression_level
        return [(t, compress(p, cfg.compression, level)) for t, p in texts]

    def write(self, batch: Batch) -> Awaitable[None] | None:
        """Publish the batch: at once when that needs no wait (then ``write`` is a plain call,
        and the runtime may run it in the sender's call: see flowengine/sending.py), else
        what to await (a reconnection, room in the window, acknowledgements)."""
        cfg = self.config
        assert self.client is not None  # the runtime calls start first
        messages = self._messages(batch)
        window = cfg.max_inflight or (QOS2_WINDOW if cfg.qos == 2 else QOS1_WINDOW)
        settle = self._settles()
        if self.client.publish_now(messages, cfg.qos, cfg.retain, window=window, settle=settle):
            self.ctx.count("published", len(messages))
            return None
        return self._publish(messages, window, settle)

    async def _publish(self, messages: list[tuple[str, bytes]], window: int, settle: bool) -> None:
        """``write``'s way with waiting."""
        cfg = self.config
        assert self.client is not None
        waited: list[str] = []
        on_wait = self._on_wait(waited)
        sent = await self.client.publish_many(
            messages,
            cfg.qos,
            cfg.retain,
            cfg.ack_timeout,
            reconnect_timeout=cfg.reconnect_timeout,
            on_wait=on_wait,
            window=window,
            settle=settle,
        )
        if waited:
            self.ctx.status(f"reconnected to {self.client.endpoints.label()}", "ok")
        self.ctx.count("published", sent)

    def _on_wait(self, waited: list[str]) -> Callable[[str], None]:
        def on_wait(text: str) -> None:
            waited.append(text)
            self.ctx.status(text, "retrying")
            self.ctx.count("reconnect_waits")

        return on_wait

    async def flush(self) -> None:
        """At the end (a stop drains the flow first): wait for every acknowledgement still
        due (``confirm: window``), so a clean stop leaves nothing unconfirmed behind."""
        cfg, client = self.config, self.client
        if client is None or not len(client.outbox):
            return
        waited: list[str] = []
        await client.settle(
            cfg.ack_timeout, reconnect_timeout=cfg.reconnect_timeout, on_wait=self._on_wait(waited)
        )

    def snapshot(self) -> list[tuple[str, bytes, int, bool]] | None:
        """For a checkpoint: the messages published before it and not acknowledged yet (the
        checkpoint covers their rows, so after a crash they must come from here)."""
        if self.client is None or not len(self.client.outbox):
            return None
        return self.client.outbox.pending()

    def restore(self, state: object) -> None:
        """After a crash: publish again what the last checkpoint held unacknowledged."""
        if isinstance(state, list) and state and self.client is not None:
            self.client.republish(state)
            self.ctx.count("republished", len(state))

    async def close(self) -> None:
        if self.client is not None:
            left = len(self.client.outbox)
            if left:
                self.ctx.error(f"{left} messages not acknowledged by the broker at the stop")
                self.ctx.log.error(
                    "%d QoS %d messages not acknowledged by the broker at the stop (a "
                    "checkpoint has them if the flow checkpoints)",
                    left,
                    self.config.qos,
                )
            await self.client.disconnect()
