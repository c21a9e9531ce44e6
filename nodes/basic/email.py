"""Email: send each batch of alert records as one plain-text email over SMTP.

smtplib blocks, so it runs in a thread (``asyncio.to_thread``) and the flow keeps moving.
Rate limit: a batch over ``max_per_minute`` is not dropped but held and combined into the next
email that the limit allows (or sent at shutdown by ``flush``): an alert is never lost, it
only arrives a little later, in a bigger email.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections import deque
from collections.abc import Hashable
from email.message import EmailMessage
from typing import Any

import pandas as pd

from flowengine.node import NodeConfig, Sink, option
from flowengine.types import Batch, Result


class EmailConfig(NodeConfig):
    host: str = option("localhost", description="SMTP server host.", examples=["smtp.plant.local"])
    port: int = option(25, ge=1, le=65535, description="SMTP server port (587 for STARTTLS).")
    starttls: bool = option(False, description="Upgrade the connection with STARTTLS.")
    cafile: str | None = option(
        None, description="CA bundle to verify the server (default: system).", advanced=True
    )
    username: str | None = option(None, description="Login name, when the server wants AUTH.")
    password: str | None = option(None, secret=True, description="Login password.")
    sender: str = option(alias="from", description="From address.", examples=["flow@plant.local"])
    to: list[str] = option(
        min_length=1, description="Recipients.", examples=[["shift-lead@plant.local"]]
    )
    subject: str = option(
        "[{severity}] Line {line} alert",
        description="Subject template; fields come from the first record.",
        examples=["[{severity}] Line {line}: defect risk"],
    )
    max_per_minute: int | None = option(
        None, ge=1, description="At most this many emails a minute; extra batches are combined."
    )
    timeout: float = option(30.0, gt=0, description="Seconds to wait for the server.")


class _Fields(dict[Hashable, Any]):
    """Template fields that print a missing name as ``?`` instead of failing the send."""

    def __missing__(self, key: Hashable) -> str:
        return "?"


def body(frame: pd.DataFrame) -> str:
    """One line per record: its message when there is one, else its fields as ``name=value``."""
    lines = []
    for record in frame.to_dict("records"):
        text = record.get("message") or ", ".join(f"{k}={v}" for k, v in record.items())
        lines.append(f"{record.get('timestamp', '')}  {record.get('event', '')}  {text}".strip())
    return f"{len(lines)} alert record(s):\n\n" + "\n".join(lines) + "\n"


class EmailSink(Sink[EmailConfig]):
    """Send each batch (alert records) as one email to `to`.

    The records held back by the rate limit are the checkpointed state, so a crash does not
    lose them; the send times are not (the limit starts afresh after a restart).
    """

    icon = "email"
    io = True  # replaced by a feeder/capture in `flowengine test`
    state_attrs = ("_held",)

    async def start(self) -> None:
        self._sent: deque[float] = deque()
        self._held: list[pd.DataFrame] = []

    async def write(self, batch: Batch) -> None:
        self._held.append(batch.frame)
        limit, now = self.config.max_per_minute, self.ctx.clock.monotonic()
        while self._sent and now - self._sent[0] >= 60:
            self._sent.popleft()
        if limit is not None and len(self._sent) >= limit:
            self.ctx.count("combined")
            return
        await self._send_held()

    async def flush(self) -> Result:
        if self._held:
            await self._send_held()
        return None

    async def _send_held(self) -> None:
        frame = pd.concat(self._held, ignore_index=True)
        self._held = []
        self._sent.append(self.ctx.clock.monotonic())
        await asyncio.to_thread(self._send, frame)
        self.ctx.count("emails")

    def _send(self, frame: pd.DataFrame) -> None:
        cfg = self.config
        msg = EmailMessage()
        first = _Fields(frame.iloc[0].to_dict() if len(frame) else {})
        msg["Subject"] = cfg.subject.format_map(first)
        msg["From"], msg["To"] = cfg.sender, ", ".join(cfg.to)
        msg.set_content(body(frame))
        with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout) as smtp:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=cfg.cafile))
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
            smtp.send_message(msg)
