"""Which messages ``nats_in`` may acknowledge: those the flow has safe.

A message taken from a consumer is held until its stream sequence is safe: a saved checkpoint
holds a state whose position covers it (``Source.committed``), or, in a flow without
checkpoints, it is on the wires (``acknowledge``). Until then JetStream keeps it pending, and
a flow that dies gets it again after the restored state (where it is skipped if the state
holds it already). Acknowledging earlier could lose it on a stream whose retention drops
acknowledged messages (``interest``, ``workqueue``) while the state had not been saved.
"""

from __future__ import annotations

from typing import Any

from flowengine.nodes.nats.client import NatsLink
from flowengine.nodes.nats.config import NatsConnection


class Held:
    """Taken messages not acknowledged yet, and per subject the last safe sequence."""

    def __init__(self) -> None:
        self.msgs: list[tuple[str, int, Any]] = []  # (subject, stream sequence, message)
        self.safe: dict[str, int] = {}
        self._news = False  # something may be ready since the last look (``ready``)

    def take(self, subject: str, seq: int, msg: Any) -> None:
        self.msgs.append((subject, seq, msg))
        self._news |= seq <= self.safe.get(subject, 0)  # a repeat of what is safe already

    def covered(self, positions: dict[str, int]) -> None:
        """Everything up to ``positions`` (per subject) is safe now."""
        for subject, seq in positions.items():
            self.safe[subject] = max(seq, self.safe.get(subject, 0))
        self._news = True

    def forget_unsafe(self) -> None:
        """Drop what is not safe (a send cut short: it comes again)."""
        self.msgs = [m for m in self.msgs if m[1] <= self.safe.get(m[0], 0)]

    def ready(self) -> list[Any]:
        """The safe messages, taken out."""
        if not self._news:
            return []
        self._news = False
        safe = self.safe
        ready = [m for subject, seq, m in self.msgs if seq <= safe.get(subject, 0)]
        if ready:
            self.msgs = [m for m in self.msgs if m[1] > safe.get(m[0], 0)]
        return ready


async def ack_all(msgs: list[Any], link: NatsLink | None, cfg: NatsConnection) -> int:
    """Acknowledge ``msgs``; how many failed (they come again and are skipped: no error).
    When their connection is gone (after ``close``) over a short one of its own: a JetStream
    ack is a message to the reply subject, which any connection may send."""
    if link is not None and link.alive:
        failed = 0
        for msg in msgs:
            try:
                await msg.ack()
            except Exception:
                failed += 1
        return failed
    apart = NatsLink(cfg)
    try:
        await apart.connect()
        for msg in msgs:
            await apart.nc.publish(msg.reply, b"+ACK")
        await apart.guard(apart.nc.flush())
    except Exception:  # the server is away
        return len(msgs)
    finally:
        await apart.close()
    return 0
