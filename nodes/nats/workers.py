"""``flowengine run --worker I/N`` on a partitioned JetStream stream: what ``nats_in`` offers
the core's workers (:class:`flowengine.worker.Partitioning`).

* The partition count is the one the stream records (``nats_out``'s ``partitions``).
* A partition's flow reads it through ``nats_in`` narrowed to ``partitions: [p]`` (its durable
  consumer ``<durable>-<p>`` is the same whichever worker reads it).
* Its checkpoint lives in the KV bucket ``state_bucket`` under ``<flow>.p<p>``.
* Workers register in the KV bucket ``flowengine_workers_<flow>`` whose values live
  ``LEASE`` seconds unless renewed: key ``w<I>`` holds ``{"index", "count", "host", "pid"}``.
  A worker whose N differs from a live peer's is refused; one whose index a live peer holds
  waits for that lease to end (at once when the holder was a process of this host that is
  gone: a worker killed and started again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

from flowengine.extras import require
from flowengine.masking import mask_url_password
from flowengine.nodes.nats.client import NatsLink
from flowengine.nodes.nats.config import NatsConnection
from flowengine.nodes.nats.kvstore import KvBackend, KvThread
from flowengine.nodes.nats.stream import stream_partitions
from flowengine.worker import WorkerRefused

log = logging.getLogger("flowengine.nodes.nats.workers")
#: Seconds a worker's registration lives without a heartbeat (it beats every quarter).
LEASE = 10.0
#: Seconds between looks while waiting for a lease held by another worker.
WAIT = 0.5


def _gone(pid: int) -> bool:
    """True when no process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's: alive
        return False
    return False


class NatsPartitioning:
    """The workers' view of one ``nats_in`` config (see the module doc)."""

    lease = LEASE

    def __init__(self, cfg: Any) -> None:  # a NatsInConfig (its module imports this one)
        self.cfg = cfg
        self.link: NatsLink | None = None
        self.kv_thread: KvThread | None = None
        self.registry: Any = None
        self.group = ""
        self.key = ""
        self.value = b""
        self.revision = 0
        self._waiting_for: dict[str, Any] | None = None

    async def _connected(self) -> NatsLink:
        if self.link is None or not self.link.alive:
            self.registry = None
            self.link = NatsLink(self.cfg)
            await self.link.connect()
        return self.link

    async def open(self) -> int:
        cfg = self.cfg
        if cfg.worker is not None or cfg.partitions is not None:
            raise ValueError(
                f"nats_in on stream {cfg.stream} sets `worker` or `partitions`: leave them out "
                "with --worker (the worker chooses its partitions)"
            )
        link = await self._connected()
        count, _, _ = await stream_partitions(link, cfg.stream)
        if count is None:
            raise ValueError(
                f"stream {cfg.stream} is not partitioned (nats_out with partition_by and "
                "partitions makes one): --worker has nothing to split"
            )
        return count

    def narrow(self, partition: int) -> Any:
        return self.cfg.model_copy(update={"partitions": [partition], "worker": None})

    def store(self, key: str) -> KvBackend:
        if self.kv_thread is None or not self.kv_thread.thread.is_alive():
            self.kv_thread = KvThread(NatsConnection(**_connection(self.cfg)))
        where = "nats-kv " + ",".join(mask_url_password(u) for u in self.cfg.urls())
        return KvBackend(self.kv_thread, self.cfg.state_bucket, key, where)

    # ---- the registry -----------------------------------------------------------------------
    async def _bucket(self) -> Any:
        link = await self._connected()
        if self.registry is None:
            name = f"flowengine_workers_{self.group}"
            jserrors = require("nats.js.errors", "nats")
            try:
                self.registry = await link.guard(link.js.key_value(name))
            except jserrors.BucketNotFoundError:
                made = link.js.create_key_value(bucket=name, history=1, ttl=self.lease)
                self.registry = await link.guard(made)
        return self.registry

    async def _peers(self) -> list[dict[str, Any]]:
        """Every live registration: its value, its key and revision."""
        kv = await self._bucket()
        jserrors = require("nats.js.errors", "nats")
        guard = await self._guard()
        try:
            keys = await guard(kv.keys())
        except jserrors.NoKeysError:
            return []
        found = []
        for key in keys:
            try:
                entry = await guard(kv.get(key))
            except jserrors.KeyNotFoundError:  # its lease ended meanwhile
                continue
            value = json.loads(bytes(entry.value or b"{}"))
            found.append({**value, "key": key, "revision": entry.revision})
        return found

    async def _guard(self) -> Any:
        return (await self._connected()).guard

    async def join(self, group: str, index: int, count: int) -> None:
        self.group, self.key = group, f"w{index}"
        me = {"index": index, "count": count, "host": socket.gethostname(), "pid": os.getpid()}
        self.value = json.dumps(me).encode()
        self._refuse_other_counts(await self._peers(), index, count, group)
        while not await self._take():
            await asyncio.sleep(WAIT)
        later = [p for p in await self._peers() if p["revision"] < self.revision]
        try:  # a peer of another N that registered at the same moment: the later one yields
            self._refuse_other_counts(later, index, count, group)
        except WorkerRefused:
            await self.leave()
            raise

    def _refuse_other_counts(
        self, peers: list[dict[str, Any]], index: int, count: int, group: str
    ) -> None:
        host = socket.gethostname()
        other = [
            p
            for p in peers
            if p.get("count") != count
            and not (p.get("host") == host and _gone(int(p.get("pid", 0))))  # killed: gone
        ]
        if not other:
            return
        named = ", ".join(
            f"{p.get('index')}/{p.get('count')} on {p.get('host')} (pid {p.get('pid')})"
            for p in other
        )
        raise WorkerRefused(
            f"worker {index}/{count} refused: workers of flow {group} with another worker "
            f"count are running: {named}. All workers of a flow run with the same N: stop "
            f"them all, then start each with --worker I/{count} (the state moves with the "
            "partitions)"
        )

    async def _take(self) -> bool:
        """Register ``key``; False while a live worker holds it (logged)."""
        kv, guard = await self._bucket(), await self._guard()
        jserrors = require("nats.js.errors", "nats")
        try:
            self.revision = await guard(kv.create(self.key, self.value))
            return True
        except jserrors.KeyWrongLastSequenceError:
            pass
        try:
            entry = await guard(kv.get(self.key))
        except jserrors.KeyNotFoundError:
            return False  # its lease ended just now: try again
        holder = json.loads(bytes(entry.value or b"{}"))
        if holder.get("host") == socket.gethostname() and _gone(int(holder.get("pid", 0))):
            self.revision = await guard(kv.update(self.key, self.value, last=entry.revision))
            return True
        if holder == self._waiting_for:
            return False  # said so already
        self._waiting_for = holder
        log.warning(
            "worker %s is held by %s (pid %s): waiting for it to stop, or for its lease to end "
            "(%gs after its last heartbeat)",
            self.key[1:],
            holder.get("host"),
            holder.get("pid"),
            self.lease,
        )
        return False

    async def beat(self) -> None:
        kv, guard = await self._bucket(), await self._guard()
        jserrors = require("nats.js.errors", "nats")
        try:
            self.revision = await guard(kv.update(self.key, self.value, last=self.revision))
            return
        except jserrors.KeyWrongLastSequenceError:
            pass
        if await self._take():  # it ended while the server was away, and nobody took it
            return
        raise WorkerRefused(f"worker {self.key[1:]} lost its registration to another process")

    async def leave(self) -> None:
        if self.key and self.registry is not None:
            await (await self._guard())(self.registry.delete(self.key))

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
            self.link = None


def _connection(cfg: Any) -> dict[str, Any]:
    """The connection settings of a ``nats_in`` config (for the stores' own connection)."""
    return {name: getattr(cfg, name) for name in NatsConnection.model_fields}
